"""Pydantic models -> structural CRDs (the models are the single source of truth).

The rewriter turns pydantic's JSON Schema into what the API server accepts as a structural
schema: `$ref`s inlined, titles dropped, `Optional[X]` as X + `nullable`, `gt`/`lt` as
OpenAPI v3.0 boolean `exclusiveMinimum`/`exclusiveMaximum`, condition lists as map lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandboxer.api.kinds import ALL_KINDS, Kind
from sandboxer.api.types import DNS1123_LABEL_PATTERN

_DROP = {"title", "$defs", "discriminator"}


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null"


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one pydantic JSON Schema (with `$defs`) into a structural OpenAPI v3 schema."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        node = dict(node)
        if "$ref" in node:
            target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}  # the field's own description overrides the model's
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if options and any(_is_null(o) for o in options):
                rest = [o for o in options if not _is_null(o)]
                del node[key]
                node["nullable"] = True
                if len(rest) == 1:
                    node = {**rest[0], **node}
                else:
                    node[key] = rest
                if "$ref" in node:
                    return walk(node)
        if node.get("default", 0) is None:
            del node["default"]
        if "const" in node:
            node["enum"] = [node.pop("const")]
        for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
                node[flag] = node.pop(bound)
                node[bound] = True
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP:
                continue
            if key == "properties":
                out[key] = {name: walk(sub) for name, sub in value.items()}
            elif key == "additionalProperties" and isinstance(value, bool):
                continue  # extra="forbid": structural schemas prune unknown fields instead
            elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
                out[key] = walk(value)
            else:
                out[key] = value
        if out.get("type") == "array" and _is_condition_list(out):
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = ["type"]
        return _ordered(out)

    return walk({k: v for k, v in schema.items() if k != "$defs"})  # type: ignore[no-any-return]


_FIRST = ("type", "description", "nullable", "default")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Stable, readable key order: type and description first, then the rest alphabetically."""
    head = [k for k in _FIRST if k in node]
    tail = sorted(k for k in node if k not in _FIRST)
    return {k: node[k] for k in head + tail}


def _is_condition_list(node: dict[str, Any]) -> bool:
    props = node.get("items", {}).get("properties", {})
    return {"type", "status", "reason", "lastTransitionTime"} <= set(props)


def _model_schema(model: Any) -> dict[str, Any]:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def openapi_schema(kind: Kind) -> dict[str, Any]:
    """The openAPIV3Schema of a kind."""
    spec = _model_schema(kind.spec)
    spec.setdefault(
        "description", (kind.spec.__doc__ or "").strip() or f"Desired state of the {kind.kind}."
    )
    status = _model_schema(kind.status)
    status = _ordered(
        {**status, "description": f"Observed state of the {kind.kind}, by Sandboxer."}
    )
    metadata: dict[str, Any] = {"type": "object"}
    if kind.name_max_length:
        metadata["properties"] = {
            "name": {
                "type": "string",
                "maxLength": kind.name_max_length,
                "pattern": DNS1123_LABEL_PATTERN,
            }
        }
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "API version, sandboxer.io/v1alpha1."},
            "kind": {"type": "string", "description": f"Always {kind.kind}."},
            "metadata": metadata,
            "spec": spec,
            "status": status,
        },
    }
    if kind.spec_required:
        root["required"] = ["spec"]
    return root


def crd(kind: Kind) -> dict[str, Any]:
    names: dict[str, Any] = {
        "kind": kind.kind,
        "listKind": f"{kind.kind}List",
        "plural": kind.plural,
        "singular": kind.singular,
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    if kind.categories:
        names["categories"] = list(kind.categories)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "sandboxer"},
        },
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": kind.scope,
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.dump() for c in kind.columns],
                }
            ],
        },
    }


def filename(kind: Kind) -> str:
    return f"{kind.group}_{kind.plural}.yaml"


def render(kind: Kind) -> str:
    header = "# Generated by `sandboxer crds` from the pydantic models. Do not edit by hand.\n"
    body = yaml.safe_dump(crd(kind), sort_keys=False, width=100, allow_unicode=True)
    return header + "---\n" + body


def render_all() -> str:
    return "".join(render(k) for k in ALL_KINDS)


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in ALL_KINDS:
        path = out / filename(kind)
        path.write_text(render(kind), encoding="utf-8")
        paths.append(path)
    return paths
