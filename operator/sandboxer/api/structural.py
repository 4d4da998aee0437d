"""Checks that a CRD schema is structural, as the API server requires for apiextensions/v1.

Rules (Kubernetes docs, "Specifying a structural schema"): every node has a `type` (unless it is
int-or-string or preserves unknown fields); no `$ref`; inside `anyOf`/`oneOf`/`allOf`/`not` no
`type`, `description`, `default`, `nullable` or `additionalProperties`; `properties` and
`additionalProperties` never together; arrays have `items`; `metadata` restricts only `name`
and `generateName`.
"""

from __future__ import annotations

from typing import Any

_JUNCTORS = ("anyOf", "oneOf", "allOf")
_FORBIDDEN_IN_JUNCTOR = ("type", "description", "default", "nullable", "additionalProperties")
_INT_OR_STRING = (
    [{"type": "integer"}, {"type": "string"}],
    [{"type": "string"}, {"type": "integer"}],
)
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def violations(schema: dict[str, Any]) -> list[str]:
    """Every structural-schema violation in an openAPIV3Schema, as 'path: problem' lines."""
    found: list[str] = []
    _node(schema, "openAPIV3Schema", found, in_junctor=False)
    meta = schema.get("properties", {}).get("metadata", {})
    extra = set(meta.get("properties", {})) - {"name", "generateName"}
    if extra:
        found.append(
            f"openAPIV3Schema.properties.metadata: only name and generateName may be "
            f"restricted, found {sorted(extra)}"
        )
    return found


def _node(node: Any, path: str, found: list[str], *, in_junctor: bool) -> None:
    if not isinstance(node, dict):
        found.append(f"{path}: schema node must be an object, got {type(node).__name__}")
        return
    if "$ref" in node:
        found.append(f"{path}: $ref is not allowed (inline the definition)")
    if in_junctor:
        for key in _FORBIDDEN_IN_JUNCTOR:
            if key in node:
                found.append(f"{path}: {key!r} is not allowed inside anyOf/oneOf/allOf/not")
    else:
        loose = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if "type" not in node and not loose:
            found.append(f"{path}: missing 'type'")
        elif "type" in node and node["type"] not in _TYPES:
            found.append(f"{path}: unknown type {node['type']!r}")
    if "properties" in node and isinstance(node.get("additionalProperties"), dict | bool):
        found.append(f"{path}: 'properties' and 'additionalProperties' are mutually exclusive")
    if node.get("type") == "array" and "items" not in node:
        found.append(f"{path}: array without 'items'")
    for name, sub in node.get("properties", {}).items():
        _node(sub, f"{path}.properties.{name}", found, in_junctor=in_junctor)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _node(node[key], f"{path}.{key}", found, in_junctor=in_junctor)
    if node.get("x-kubernetes-int-or-string") and node.get("anyOf") in _INT_OR_STRING:
        pass  # the one documented exception: anyOf [integer, string] for int-or-string
    else:
        for key in _JUNCTORS:
            for i, sub in enumerate(node.get(key, [])):
                _node(sub, f"{path}.{key}[{i}]", found, in_junctor=True)
    if "not" in node:
        _node(node["not"], f"{path}.not", found, in_junctor=True)
