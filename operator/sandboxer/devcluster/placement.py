"""Pure scheduling policy: pod requests, node filters, and the scheduler's reason messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandboxer.devcluster.quantities import parse_quantity


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """Summed container requests; a limit stands in for a missing request (extended resources)."""
    total: dict[str, float] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in merged.items():
            total[name] = total.get(name, 0.0) + parse_quantity(value)
    return total


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol.get("key") == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    values = list(expr.get("values") or [])
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def matches_node(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    spec = pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    # Terms are ORed; the expressions inside one term are ANDed.
    return any(
        all(_expression(e, labels) for e in term.get("matchExpressions") or []) for term in terms
    )


@dataclass(frozen=True)
class NodeView:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    allocatable: Mapping[str, float]
    used: Mapping[str, float]
    unschedulable: bool = False


def filter_node(pod: Mapping[str, Any], node: NodeView, requests: Mapping[str, float]) -> list[str]:
    """Why the pod cannot go on the node (empty when it fits), in the default plugins' order."""
    if node.unschedulable:
        return ["node(s) were unschedulable"]
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            value = taint.get("value")
            text = f"{taint.get('key')}: {value}" if value else str(taint.get("key"))
            return [f"node(s) had untolerated taint {{{text}}}"]
    if not matches_node(pod, node.labels):
        return ["node(s) didn't match Pod's node affinity/selector"]
    reasons = []
    for name, amount in sorted(requests.items()):
        if amount <= 0:
            continue
        free = node.allocatable.get(name, 0.0) - node.used.get(name, 0.0)
        if amount > free + 1e-9:
            reasons.append(f"Insufficient {name}")
    return reasons


def unschedulable_message(total_nodes: int, reasons: Mapping[str, int]) -> str:
    """`0/2 nodes are available: 2 Insufficient nvidia.com/gpu.` as kube-scheduler words it."""
    if total_nodes == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total_nodes} nodes are available: {', '.join(parts)}."
