"""What one pass of the loop sees: plain data copied out of the operator's indexes.

Keeping the loop's input a plain value makes the accounting loop testable without kopf or an API
server, and lets benchmarks feed it synthetic clusters of any size. `SnapshotBuilder` copies
kopf's indexes into a `Snapshot`, parsing each object only when it changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandboxer.api.budget import ComputeBudgetSpec
from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.api.ratecard import RateCardSpec
from sandboxer.api.sandbox import ExperimentSandboxSpec, ExperimentSandboxStatus
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.manifests.labels import OWNER_GROUPS_ANNOTATION


@dataclass(frozen=True, slots=True)
class SandboxView:
    uid: str
    namespace: str
    name: str
    generation: int | None
    spec: ExperimentSandboxSpec
    status: ExperimentSandboxStatus
    owner_groups: frozenset[str] = frozenset()
    created_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def owner(self) -> str:
        return self.spec.owner or ""

    @property
    def running(self) -> bool:
        """Holding (or about to hold) GPUs: not suspended by spec."""
        return not self.spec.suspend

    def condition(self, type_: str) -> tuple[str, str] | None:
        for cond in self.status.conditions:
            if cond.type == type_:
                return cond.status, cond.reason
        return None


@dataclass(frozen=True, slots=True)
class JupyterReading:
    """What a notebook's Jupyter Server said its user last did (controller/jupyter_activity.py)."""

    last_activity: datetime
    kernels: int
    connections: int
    read_at: datetime


@dataclass(slots=True)
class Snapshot:
    now: datetime
    sandboxes: dict[tuple[str, str], SandboxView] = field(default_factory=dict)
    pods: dict[str, tuple[str, str]] = field(default_factory=dict)  # pod uid -> sandbox key
    classes: dict[str, SandboxClassSpec] = field(default_factory=dict)
    budgets: dict[str, ComputeBudgetSpec] = field(default_factory=dict)
    rate_card: RateCardSpec = field(default_factory=RateCardSpec)
    reports: dict[str, GPUNodeReportStatus] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    # name -> the ComputeBudget's stored status: what a new leader continues from.
    budget_statuses: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # (namespace, name) -> the notebook's latest Jupyter reading, or why there is none; only
    # for running sandboxes whose class reads Jupyter activity.
    jupyter: Mapping[tuple[str, str], JupyterReading | str] = field(default_factory=dict)


def sandbox_view(raw: Mapping[str, Any]) -> SandboxView | None:
    """Parse one indexed sandbox ({metadata, spec, status}); None when it does not parse
    (the lifecycle handler reports such a sandbox with a condition already)."""
    meta = raw.get("metadata") or {}
    try:
        spec = ExperimentSandboxSpec.model_validate(raw.get("spec") or {})
        status = ExperimentSandboxStatus.model_validate(raw.get("status") or {})
    except ValueError:
        return None
    groups = (meta.get("annotations") or {}).get(OWNER_GROUPS_ANNOTATION, "")
    created = meta.get("creationTimestamp")
    return SandboxView(
        uid=meta.get("uid", ""),
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        generation=meta.get("generation"),
        spec=spec,
        status=status,
        owner_groups=frozenset(g for g in groups.split(",") if g),
        created_at=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
    )


def merged_rate_card(cards: Mapping[str, Mapping[str, Any]]) -> RateCardSpec:
    """All RateCard objects as one card (prices of every card; the first card's currency)."""
    prices: list[Any] = []
    currency = "USD"
    for _, spec in sorted(cards.items()):
        card = RateCardSpec.model_validate(spec)
        if not prices:
            currency = card.currency
        prices.extend(p for p in card.prices)
    return RateCardSpec(currency=currency, prices=prices)


def one_per_key(index: Any) -> dict[Any, Any]:
    """A kopf index (key -> store of values) as key -> its one value."""
    return {key: next(iter(values)) for key, values in index.items() if values}


class SnapshotBuilder:
    """Copies the indexes into a Snapshot, parsing each object only when it changed."""

    def __init__(self) -> None:
        self._views: dict[str, tuple[str, SandboxView | None]] = {}
        self._reports: dict[str, tuple[str, GPUNodeReportStatus | None]] = {}
        self._specs: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}
        self._card: tuple[dict[Any, Any], RateCardSpec] | None = None

    def _parsed(self, kind: str, name: str, raw: dict[str, Any], model: Any) -> Any:
        """Parse a class/budget spec once per change, so parsed objects stay identical
        between passes (the accounting loop caches per-object work on them)."""
        cached = self._specs.get((kind, name))
        if cached is None or cached[0] != raw:
            try:
                parsed = model.model_validate(raw)
            except ValueError:
                parsed = None
            cached = self._specs[(kind, name)] = (raw, parsed)
        return cached[1]

    def policies(self, indexes: Mapping[str, Any], now: datetime) -> Snapshot:
        """Only classes, budgets and prices: what admission needs beyond the last pass."""
        snap = Snapshot(now=now)
        for name, spec in one_per_key(indexes["index_class"]).items():
            cls = self._parsed("class", name, spec, SandboxClassSpec)
            if cls is not None:
                snap.classes[name] = cls
        for name, spec in one_per_key(indexes["index_budget"]).items():
            budget = self._parsed("budget", name, spec, ComputeBudgetSpec)
            if budget is not None:
                snap.budgets[name] = budget
        cards = one_per_key(indexes["index_ratecard"])
        if self._card is None or self._card[0] != cards:
            with contextlib.suppress(ValueError):
                self._card = (cards, merged_rate_card(cards))
        if self._card is not None:
            snap.rate_card = self._card[1]  # the same object while unchanged (loop caches)
        return snap

    def build(self, indexes: Mapping[str, Any], now: datetime) -> Snapshot:
        snap = self.policies(indexes, now)
        live: set[str] = set()
        for key, raw in one_per_key(indexes["index_sandbox"]).items():
            meta = raw.get("metadata", {})
            uid, version = meta.get("uid", ""), str(meta.get("resourceVersion", ""))
            live.add(uid)
            cached = self._views.get(uid)
            if cached is None or cached[0] != version or not version:
                cached = self._views[uid] = (version, sandbox_view(raw))
            if cached[1] is not None:
                snap.sandboxes[key] = cached[1]
        for uid in set(self._views) - live:
            del self._views[uid]
        snap.pods = one_per_key(indexes["index_pod_uid"])
        for node, status in one_per_key(indexes["index_report"]).items():
            stamp = f"{status.get('epoch')}/{status.get('sequence')}"
            cached_report = self._reports.get(node)
            if cached_report is None or cached_report[0] != stamp:
                try:
                    parsed: GPUNodeReportStatus | None = GPUNodeReportStatus.model_validate(status)
                except ValueError:
                    parsed = None
                cached_report = self._reports[node] = (stamp, parsed)
            if cached_report[1] is not None:
                snap.reports[node] = cached_report[1]
        snap.namespaces = one_per_key(indexes["index_namespace"])
        snap.budget_statuses = one_per_key(indexes.get("index_budget_status", {}))
        return snap
