"""Label and field selectors as the API server parses them (`=`, `!=`, `in`, `notin`, `!k`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandboxer.devcluster.errors import bad_request

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.:/-]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def parse_labels(text: str | None) -> tuple[Requirement, ...]:
    if not text:
        return ()
    out = []
    for part in _split(text):
        eq = _EQ_RE.match(part)
        if eq:
            key, op, value = eq.groups()
            out.append(Requirement(key, "notin" if op == "!=" else "in", frozenset({value})))
            continue
        match = _SET_RE.match(part)
        if not match:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
        negate, key, op, values = match.groups()
        if op:
            vals = frozenset(v.strip() for v in values.split(",") if v.strip())
            out.append(Requirement(key, op, vals))
        else:
            out.append(Requirement(key, "!exists" if negate else "exists"))
    return tuple(out)


def parse_fields(text: str | None) -> tuple[tuple[str, str, bool], ...]:
    """Field requirements as (dotted path, value, equal?)."""
    if not text:
        return ()
    out = []
    for part in text.split(","):
        eq = _EQ_RE.match(part)
        if not eq:
            raise bad_request(f"invalid field selector: {part.strip()!r}: use field=value")
        key, op, value = eq.groups()
        out.append((key, value, op != "!="))
    return tuple(out)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def matcher(
    label_selector: str | None, field_selector: str | None
) -> Callable[[Mapping[str, Any]], bool] | None:
    """A predicate over whole objects, or None when nothing is selected on."""
    labels = parse_labels(label_selector)
    fields = parse_fields(field_selector)
    if not labels and not fields:
        return None

    def check(obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        own = meta.get("labels") or {}
        if not all(req.matches(own) for req in labels):
            return False
        return all((_field_value(obj, path) == value) == eq for path, value, eq in fields)

    return check


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A `metav1.LabelSelector` object (matchLabels + matchExpressions) against labels."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
        req = Requirement(expr["key"], op[expr["operator"]], frozenset(expr.get("values") or ()))
        if not req.matches(labels):
            return False
    return True
