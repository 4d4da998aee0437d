"""Object metadata rules: names, uids, timestamps, generation, schema defaults and pruning."""

from __future__ import annotations

import copy
import datetime
import secrets
import uuid
from typing import Any

from jsonschema import Draft7Validator

from sandboxer.api.types import rfc3339
from sandboxer.api.validation import apply_defaults, to_jsonschema, validate
from sandboxer.devcluster.errors import ApiError, invalid
from sandboxer.devcluster.resources import ResourceType

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339(clock: datetime.datetime | None = None) -> str:
    moment = clock or datetime.datetime.now(datetime.UTC)
    return rfc3339(moment)


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def name_for_create(rt: ResourceType, meta: dict[str, Any]) -> str:
    """metadata.name, or one made from generateName; a 422 as on the real server without both."""
    if meta.get("name"):
        return str(meta["name"])
    if meta.get("generateName"):
        return generated_name(meta["generateName"])
    cause = {
        "reason": "FieldValueRequired",
        "field": "metadata.name",
        "message": "Required value: name or generateName is required",
    }
    raise invalid(rt.kind, rt.group, "", [cause])


def new_uid() -> str:
    return str(uuid.uuid4())


def spec_changed(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Generation moves on changes outside metadata (and outside status where it is separate)."""
    skip = {"metadata", "apiVersion", "kind"}
    if rt.status_subresource or rt.schema is None:
        skip.add("status")
    keys = (set(new) | set(old)) - skip
    return any(new.get(k) != old.get(k) for k in keys)


def scoped(
    rt: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str
) -> dict[str, Any]:
    """Status and main resource are written separately for kinds with a status subresource."""
    if subresource == "status":
        out = copy.copy(old)
        if "status" in new:
            out["status"] = new["status"]
        else:
            out.pop("status", None)
        return out
    if rt.status_subresource:
        out = {k: v for k, v in new.items() if k != "status"}
        if "status" in old:
            out["status"] = old["status"]
        return out
    return new


def prune(schema: dict[str, Any], obj: Any) -> Any:
    """Drop fields the schema does not know, as the API server does without strict validation."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return obj
    if isinstance(obj, dict) and schema.get("type", "object") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and not isinstance(extra, dict):
            return obj
        out = {}
        for key, value in obj.items():
            if props is not None and key in props:
                out[key] = prune(props[key], value)
            elif isinstance(extra, dict):
                out[key] = prune(extra, value)
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], item) for item in obj]
    return obj


class CompiledSchemas:
    """Validators compiled once per served schema: compiling one per write cost ~1 ms."""

    def __init__(self) -> None:
        self._compiled: dict[int, tuple[dict[str, Any], Draft7Validator]] = {}

    def is_valid(self, schema: dict[str, Any], obj: dict[str, Any]) -> bool:
        entry = self._compiled.get(id(schema))
        if entry is None or entry[0] is not schema:
            entry = (schema, Draft7Validator(to_jsonschema(schema)))
            self._compiled[id(schema)] = entry
        return bool(entry[1].is_valid(obj))


def check_custom(
    rt: ResourceType, obj: dict[str, Any], strict: bool, compiled: CompiledSchemas
) -> dict[str, Any]:
    """Defaults, pruning and schema validation of a custom object; 422 on violations."""
    schema = rt.schema
    if schema is None:
        return obj
    meta = obj.get("metadata") or {}
    body = {k: v for k, v in obj.items() if k != "metadata"}
    body = apply_defaults(schema, body)
    if not strict:
        body = prune({**schema, "properties": _without_metadata(schema)}, body)
    meta_schema = (schema.get("properties") or {}).get("metadata") or {}
    known_meta = set((meta_schema.get("properties") or {}).keys())
    checked = {**body, "metadata": {k: v for k, v in meta.items() if k in known_meta}}
    if compiled.is_valid(schema, checked):
        return {**body, "metadata": meta}
    errors = validate(schema, checked)  # the slow path words the errors like the API server
    unknown = [e for e in errors if e.message.startswith("unknown field")]
    if unknown and strict:
        # As the real server: strict decoding fails first, with 400 rather than 422.
        fields = ", ".join(f'unknown field "{e.field}"' for e in unknown)
        raise ApiError(
            400,
            "BadRequest",
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            f"strict decoding error: {fields}",
        )
    if errors:
        causes = [{"reason": e.reason, "message": e.message, "field": e.field} for e in errors]
        raise invalid(rt.kind, rt.group, meta.get("name", ""), causes)
    return {**body, "metadata": meta}


def _without_metadata(schema: dict[str, Any]) -> dict[str, Any]:
    props = dict(schema.get("properties") or {})
    props.pop("metadata", None)
    return props
