"""Merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for core kinds.

All functions return new structures and never modify their inputs in place, because stored
objects are shared with watch streams and list responses.
"""

from __future__ import annotations

import copy
from typing import Any

from sandboxer.devcluster.errors import ApiError, bad_request, unsupported_media_type

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

# Lists merged by a key in strategic merge patches (`patchMergeKey` in the core types).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "volumeClaimTemplates": "name",
    "conditions": "type",
    "containerStatuses": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}


class PatchError(ValueError):
    """The patch cannot be applied; `test_failed` marks a failed JSON-patch `test` op."""

    def __init__(self, message: str, *, test_failed: bool = False) -> None:
        super().__init__(message)
        self.test_failed = test_failed


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise PatchError(f"path segment {part!r} not found")
            doc = doc[part]
        elif isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"list index {part!r} out of range") from exc
        else:
            raise PatchError(f"cannot descend into {type(doc).__name__} at {part!r}")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if index > len(parent):
                raise PatchError(f"list index {index} out of range")
            parent.insert(index, value)
    else:
        raise PatchError(f"cannot add into {type(parent).__name__}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    try:
        if isinstance(parent, dict):
            return parent.pop(last)
        if isinstance(parent, list):
            return parent.pop(int(last))
    except (KeyError, ValueError, IndexError) as exc:
        raise PatchError(f"unable to remove nonexistent key: {last}") from exc
    raise PatchError(f"cannot remove from {type(parent).__name__}")


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "test":
            try:
                actual = _walk(doc, parts)
            except PatchError as exc:
                message = f"testing value {op['path']} failed: {exc}"
                raise PatchError(message, test_failed=True) from exc
            if actual != op.get("value"):
                raise PatchError(f"testing value {op['path']} failed", test_failed=True)
        elif kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)  # must exist
            if not parts:
                doc = copy.deepcopy(op.get("value"))
            else:
                _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(op["from"])
            value = _walk(doc, source)
            if kind == "move":
                _remove(doc, source)
            doc = _add(doc, parts, copy.deepcopy(value))
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge as kubectl sends it for core kinds: keyed lists merge by their key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value, key)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    out = list(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            out.append(copy.deepcopy(item))
            continue
        index = next(
            (i for i, old in enumerate(out) if isinstance(old, dict) and old.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[index] = strategic_merge_patch(out[index], item)
    return out


def apply_patch(content_type: str, old: dict[str, Any], patch: Any, *, strategic: bool) -> Any:
    """A PATCH body applied by its content type, failing as the real server does.

    Strategic merge needs the Go types' merge keys, so custom resources (strategic=False) refuse it.
    """
    try:
        if content_type in (MERGE, APPLY):
            result = merge_patch(old, patch)
        elif content_type == JSON_PATCH:
            if not isinstance(patch, list):
                raise bad_request("a JSON patch must be a list of operations")
            result = json_patch(old, patch)
        elif content_type == STRATEGIC and strategic:
            result = strategic_merge_patch(old, patch)
        else:
            raise unsupported_media_type(content_type, [JSON_PATCH, MERGE, APPLY])
    except PatchError as exc:
        # As the real server: a failed `test` op or a bad path is 422 (kopf relies on it).
        raise ApiError(422, "Invalid", str(exc)) from exc
    if not isinstance(result, dict):
        raise bad_request("the patch must produce a JSON object")
    return result
