"""Shared inputs for the builder tests: the example H100 class and a small sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.manifests.inputs import Sandbox

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example_class(name: str = "class-h100.yaml", **changes: Any) -> SandboxClassSpec:
    spec = yaml.safe_load((EXAMPLES / name).read_text())["spec"]
    return SandboxClassSpec.model_validate({**spec, **changes})


def make_sandbox(name: str = "nb", namespace: str = "team-a", **spec: Any) -> Sandbox:
    fields = {"class": "h100", "gpus": 2, "owner": "alice@example.com", **spec}
    return Sandbox(
        name=name,
        namespace=namespace,
        spec=ExperimentSandboxSpec.model_validate(fields),
        uid="0b6a3c7e-2f5d-4a1b-9c8e-7d6f5e4d3c2b",
        generation=3,
    )
