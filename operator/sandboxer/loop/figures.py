"""Per-pass figures that budget checks, admission and status writes share: the budgets, the
running sandboxes with their hourly cost, owners' groups and the open hours' provisional rows.

Built once per pass; per-object work is cached on the snapshot's parsed objects, which the
snapshot builder keeps identical while they are unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.budgets.matching import Budget, BudgetIndex, Person
from sandboxer.budgets.periods import Period
from sandboxer.budgets.status import RunningSandbox, UsageSlice
from sandboxer.ledger.pricing import PriceNotFoundError, unit_price
from sandboxer.ledger.rows import UsageRow
from sandboxer.loop.snapshot import Snapshot
from sandboxer.loop.usage import UsageTotals


@dataclass
class PassFigures:
    """Derived data of one pass (admission reads the last pass's copy)."""

    now: datetime
    budgets: list[Budget]
    running: list[RunningSandbox]
    groups_of: dict[str, frozenset[str]]
    open_rows: list[UsageRow]
    slices: dict[str, list[UsageSlice]] = field(default_factory=dict)
    index: BudgetIndex = field(default_factory=lambda: BudgetIndex(()))

    def person(self, owner: str, namespace: str) -> Person:
        return Person(owner, self.groups_of.get(owner, frozenset()), namespace)

    def usage_in(self, totals: UsageTotals, period: Period) -> list[UsageSlice]:
        """The period's usage slices (closed totals plus open hours), computed once."""
        if period.name not in self.slices:
            self.slices[period.name] = totals.slices(period, self.open_rows)
        return self.slices[period.name]

    def budget_slices(
        self, totals: UsageTotals, budget: Budget, period: Period
    ) -> list[UsageSlice]:
        """The period's usage slices of this budget's members (grouped once per period)."""
        if f"{budget.name}/{period.name}" not in self.slices:
            groups: dict[str, list[UsageSlice]] = defaultdict(list)
            for s in self.usage_in(totals, period):
                for b in self.index.budgets_for(self.person(s.owner, s.namespace)):
                    groups[b.name].append(s)
            for b in self.budgets:
                self.slices[f"{b.name}/{period.name}"] = groups.get(b.name, [])
        return self.slices[f"{budget.name}/{period.name}"]


def hourly_cost(snap: Snapshot, cls: SandboxClassSpec, gpus: int) -> float:
    """Contracted price per hour of `gpus` GPUs of a class (0 when the card has no price)."""
    try:
        price = unit_price(
            snap.rate_card, cls.gpu.model, cls.gpu.mig_profile, snap.now, cls.gpu.billing_weight
        )
    except PriceNotFoundError:
        return 0.0
    return float(price.contracted_price) * gpus * cls.gpu.billing_weight


class FigureBuilder:
    """Builds `PassFigures`, reusing what did not change since the last pass."""

    def __init__(self) -> None:
        self._running_cache: dict[str, tuple[Any, RunningSandbox]] = {}
        self._index: tuple[Any, BudgetIndex] | None = None

    def budget_index(self, snap: Snapshot) -> BudgetIndex:
        """Reused while the budget objects are unchanged (the snapshot builder keeps them)."""
        key = tuple((n, id(s)) for n, s in sorted(snap.budgets.items()))
        if self._index is None or self._index[0] != key:
            self._index = (key, BudgetIndex(Budget(n, s) for n, s in sorted(snap.budgets.items())))
        return self._index[1]

    def build(self, snap: Snapshot, open_rows: list[UsageRow]) -> PassFigures:
        budgets = [Budget(n, s) for n, s in sorted(snap.budgets.items())]
        running: list[RunningSandbox] = []
        per_gpu: dict[str, float] = {}  # class -> hourly cost of one GPU, priced once per pass
        groups_of: dict[str, frozenset[str]] = {}
        cache: dict[str, tuple[Any, RunningSandbox]] = {}
        for sb in snap.sandboxes.values():
            if sb.owner_groups:
                known = groups_of.get(sb.owner)
                if known is None or not sb.owner_groups <= known:
                    groups_of[sb.owner] = (known or frozenset()) | sb.owner_groups
            cls = snap.classes.get(sb.spec.class_)
            if not sb.running or cls is None or sb.spec.gpus == 0:
                continue
            if sb.spec.class_ not in per_gpu:
                per_gpu[sb.spec.class_] = hourly_cost(snap, cls, 1)
            key = (id(sb), id(cls), per_gpu[sb.spec.class_])
            hit = self._running_cache.get(sb.uid)
            if hit is None or hit[0] != key:
                hit = (
                    key,
                    RunningSandbox(
                        uid=sb.uid,
                        name=sb.name,
                        namespace=sb.namespace,
                        owner=sb.owner,
                        sandbox_class=sb.spec.class_,
                        gpus=sb.spec.gpus,
                        billing_weight=cls.gpu.billing_weight,
                        hourly_cost=sb.spec.gpus * per_gpu[sb.spec.class_],
                    ),
                )
            cache[sb.uid] = hit
            running.append(hit[1])
        self._running_cache = cache  # views are the same objects while unchanged
        return PassFigures(
            snap.now, budgets, running, groups_of, open_rows, index=self.budget_index(snap)
        )
