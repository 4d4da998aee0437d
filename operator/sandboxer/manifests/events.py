"""Core v1 Events about sandboxes and budgets (what `kubectl describe` shows), as pure builders."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sandboxer import API_VERSION
from sandboxer.api.types import rfc3339
from sandboxer.loop.results import EventIntent

_EVENT_SEQ = itertools.count()
EVENT_NAMESPACE_FOR_CLUSTER_OBJECTS = "default"  # where Events about cluster-scoped kinds go


def event_object(event: EventIntent, now: datetime, instance: str) -> dict[str, Any]:
    """A core v1 Event about a sandbox or budget (what `kubectl describe` shows)."""
    namespace = event.namespace or EVENT_NAMESPACE_FOR_CLUSTER_OBJECTS
    involved: dict[str, Any] = {"apiVersion": API_VERSION, "kind": event.kind, "name": event.name}
    if event.namespace:
        involved["namespace"] = event.namespace
    if event.uid:
        involved["uid"] = event.uid
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{event.name}.{now:%Y%m%d%H%M%S}{next(_EVENT_SEQ):06d}",
            "namespace": namespace,
        },
        "involvedObject": involved,
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": "sandboxer"},
        "reportingComponent": "sandboxer.io/operator",
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
