"""The inputs of every builder: a parsed sandbox plus its class, and the values they resolve to."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import parse_quantity
from sandboxer.manifests.labels import POD_ANNOTATIONS

NOTEBOOK_PORT = 8888
HOME = "/home/jovyan"

_QUANTITY_PARTS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")


@dataclass(frozen=True)
class Sandbox:
    """An ExperimentSandbox as the builders need it: identity plus the parsed spec."""

    name: str
    namespace: str
    spec: ExperimentSandboxSpec
    uid: str | None = None
    generation: int | None = None
    pod_annotations: tuple[tuple[str, str], ...] = ()  # of POD_ANNOTATIONS, for the template

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Sandbox:
        """Parse an API object; raises pydantic.ValidationError on a spec that cannot work."""
        meta = body.get("metadata", {})
        annotations = meta.get("annotations") or {}
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            spec=ExperimentSandboxSpec.model_validate(body.get("spec") or {}),
            uid=meta.get("uid"),
            generation=meta.get("generation"),
            pod_annotations=tuple(
                (k, str(annotations[k])) for k in POD_ANNOTATIONS if k in annotations
            ),
        )


def scale_quantity(quantity: str, factor: int) -> str:
    """quantity times factor, keeping the unit ("64Gi", 2 -> "128Gi"; "500m", 3 -> "1500m")."""
    match = _QUANTITY_PARTS.match(quantity)
    if match is None:  # exponent forms: fall back to base units
        return _plain(parse_quantity(quantity) * factor)
    number, suffix = match.groups()
    return _plain(Decimal(number) * factor) + suffix


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def image(sandbox: Sandbox, cls: SandboxClassSpec) -> str:
    return sandbox.spec.image or cls.image


def cpu(sandbox: Sandbox, cls: SandboxClassSpec) -> str:
    res = sandbox.spec.resources
    if res is not None and res.cpu is not None:
        return res.cpu
    return scale_quantity(cls.defaults.cpu_per_gpu, max(sandbox.spec.gpus, 1))


def memory(sandbox: Sandbox, cls: SandboxClassSpec) -> str:
    res = sandbox.spec.resources
    if res is not None and res.memory is not None:
        return res.memory
    return scale_quantity(cls.defaults.memory_per_gpu, max(sandbox.spec.gpus, 1))


def storage(sandbox: Sandbox, cls: SandboxClassSpec) -> str:
    st = sandbox.spec.storage
    return st.size if st is not None and st.size is not None else cls.defaults.storage
