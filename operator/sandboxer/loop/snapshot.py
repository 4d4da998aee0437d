"""What one pass of the loop sees: plain data copied out of the operator's indexes.

Keeping the loop's input a plain value makes the engine testable without kopf or an API server,
and lets benchmarks feed it synthetic clusters of any size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandboxer.api.budget import ComputeBudgetSpec
from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.api.ratecard import RateCardSpec
from sandboxer.api.sandbox import ExperimentSandboxSpec, ExperimentSandboxStatus
from sandboxer.api.sandboxclass import SandboxClassSpec

TEAM_LABEL = "sandboxer.io/team"
COST_CENTER_LABEL = "sandboxer.io/cost-center"
OWNER_GROUPS_ANNOTATION = "sandboxer.io/owner-groups"


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
