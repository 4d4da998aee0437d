"""Server-side `Table` output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable
from typing import Any

from sandboxer.devcluster.resources import ResourceType

Row = Callable[[dict[str, Any], datetime.datetime], list[Any]]
_INDEX = re.compile(r"^(\w[\w-]*)\[(\d+)\]$")


def human_age(stamp: str | None, now: datetime.datetime) -> str:
    """Like apimachinery's HumanDuration: 45s, 5m, 3h, 2d."""
    if not stamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 3:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def json_path(obj: Any, path: str) -> Any:
    """The simple JSONPath of printer columns: `.a.b`, `.a[0].b`."""
    node = obj
    for part in path.strip(".").split("."):
        if not part:
            continue
        match = _INDEX.match(part)
        key, index = (match.group(1), int(match.group(2))) if match else (part, None)
        node = node.get(key) if isinstance(node, dict) else None
        if index is not None:
            node = node[index] if isinstance(node, list) and index < len(node) else None
        if node is None:
            return None
    return node


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _age(obj: dict[str, Any], now: datetime.datetime) -> str:
    return human_age(obj["metadata"].get("creationTimestamp"), now)


def _pod(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    phase = (obj.get("status") or {}).get("phase", "Pending")
    if obj["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    status = obj.get("status") or {}
    node = (obj.get("spec") or {}).get("nodeName") or "<none>"
    return [
        _name(obj),
        f"{ready}/{total}",
        phase,
        0,
        _age(obj, now),
        status.get("podIP") or "<none>",
        node,
    ]


def _node(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    status = "Ready" if ready else "NotReady"
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    version = ((obj.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [_name(obj), status, "<none>", _age(obj, now), version]


def _sts(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    ready = (obj.get("status") or {}).get("readyReplicas", 0)
    want = (obj.get("spec") or {}).get("replicas", 1)
    return [_name(obj), f"{ready}/{want}", _age(obj, now)]


def _pvc(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    return [
        _name(obj),
        status.get("phase", "Pending"),
        spec.get("volumeName", ""),
        (status.get("capacity") or {}).get("storage", ""),
        ",".join(
            {"ReadWriteOnce": "RWO", "ReadWriteMany": "RWX"}.get(m, m)
            for m in spec.get("accessModes") or []
        ),
        spec.get("storageClassName") or "<unset>",
        _age(obj, now),
    ]


def _namespace(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    return [_name(obj), (obj.get("status") or {}).get("phase", "Active"), _age(obj, now)]


def _event(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    stamp = obj.get("lastTimestamp") or obj["metadata"].get("creationTimestamp")
    return [
        human_age(stamp, now),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": "", "priority": priority}


NAME = _col("Name", fmt="name")
AGE = _col("Age")
CORE: dict[str, tuple[list[dict[str, Any]], Row]] = {
    "pods": (
        [
            NAME,
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "integer"),
            AGE,
            _col("IP", priority=1),
            _col("Node", priority=1),
        ],
        _pod,
    ),
    "nodes": ([NAME, _col("Status"), _col("Roles"), AGE, _col("Version")], _node),
    "statefulsets": ([NAME, _col("Ready"), AGE], _sts),
    "persistentvolumeclaims": (
        [
            NAME,
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            AGE,
        ],
        _pvc,
    ),
    "namespaces": ([NAME, _col("Status"), AGE], _namespace),
    "events": (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event,
    ),
}


def _custom(rt: ResourceType) -> tuple[list[dict[str, Any]], Row]:
    columns = [NAME] + [
        _col(c["name"], c.get("type", "string"), int(c.get("priority", 0)), c.get("format", ""))
        for c in rt.columns
    ]

    def row(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
        cells: list[Any] = [_name(obj)]
        for c in rt.columns:
            value = json_path(obj, c["jsonPath"])
            if c.get("type") == "date" and isinstance(value, str):
                value = human_age(value, now)
            cells.append(value)
        return cells

    return columns, row


def build(
    rt: ResourceType,
    objs: Iterable[dict[str, Any]],
    resource_version: str,
    include_object: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    if rt.group in ("", "apps") and rt.plural in CORE:
        columns, row = CORE[rt.plural]
    elif rt.columns:
        columns, row = _custom(rt)
    else:
        columns, row = [NAME, AGE], lambda o, n: [_name(o), _age(o, n)]
    rows = []
    for obj in objs:
        entry: dict[str, Any] = {"cells": row(obj, now)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
