"""Running usage totals: closed ledger rows summed once, open hours added per pass.

Summing every row of a month on every pass would grow with sandboxes x hours; instead closed
rows are folded into per-sandbox and per-period aggregates as they close (or load at start).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sandboxer.budgets.periods import Period, period_at
from sandboxer.budgets.status import SliceSums, UsageSlice, add_rows, to_slices
from sandboxer.ledger.rows import UsageRow


@dataclass(slots=True)
class SandboxTotals:
    gpu_hours: float = 0.0
    busy_gpu_hours: float = 0.0
    cost: float = 0.0
    currency: str | None = None

    def add(self, row: UsageRow) -> None:
        self.gpu_hours += row.allocated_gpu_hours
        self.busy_gpu_hours += row.busy_gpu_hours
        self.cost += row.cost
        self.currency = row.currency


@dataclass(slots=True)
class UsageTotals:
    by_sandbox: dict[str, SandboxTotals] = field(default_factory=dict)
    by_period: dict[str, SliceSums] = field(default_factory=dict)

    def add_closed(self, rows: Iterable[UsageRow]) -> None:
        for row in rows:
            self.by_sandbox.setdefault(row.sandbox_uid, SandboxTotals()).add(row)
            for kind in ("Monthly", "Weekly"):
                add_rows(self.by_period.setdefault(period_at(kind, row.hour).name, {}), (row,))

    def slices(self, period: Period, open_rows: Iterable[UsageRow]) -> list[UsageSlice]:
        """Closed aggregates of `period` plus the provisional rows of open hours."""
        sums = {k: list(v) for k, v in self.by_period.get(period.name, {}).items()}
        return to_slices(add_rows(sums, open_rows, period))

    def sandbox(self, uid: str, open_rows: Iterable[UsageRow]) -> SandboxTotals:
        base = self.by_sandbox.get(uid, SandboxTotals())
        out = SandboxTotals(base.gpu_hours, base.busy_gpu_hours, base.cost, base.currency)
        for row in open_rows:
            out.add(row)
        return out
