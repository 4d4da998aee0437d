"""Finance summary of one exported period: per team and per person, as CSV and a PNG chart."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pyarrow as pa

_KEYS = {"team": "SubAccountId", "person": "x_Owner"}
HEADER = (
    "scope", "name", "currency", "budget", "gpu_hours", "busy_gpu_hours", "busy_share",
    "cost", "budget_allowance_gpu_hours", "budget_use",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SummaryLine:
    scope: str  # "team" or "person"
    name: str
    currency: str
    budget: str | None
    gpu_hours: float
    busy_gpu_hours: float
    cost: float
    allowance: float | None

    @property
    def busy_share(self) -> float | None:
        return self.busy_gpu_hours / self.gpu_hours if self.gpu_hours > 0 else None

    @property
    def budget_use(self) -> float | None:
        return self.gpu_hours / self.allowance if self.allowance else None


_SUMS = ("PricingQuantity", "x_BusyGpuHours", "BilledCost")


class SummaryAccumulator:
    """Per-team and per-person sums, added up batch by batch as the FOCUS rows stream past.

    Each scope keeps one small table of partial sums per (name, currency, budget), merged with
    every batch's group sums; memory depends on the number of groups, not of rows.
    """

    def __init__(self) -> None:
        self._partial: dict[str, pa.Table | None] = dict.fromkeys(_KEYS)

    def add(self, focus: pa.Table) -> None:
        for scope, column in _KEYS.items():
            keys = [column, "BillingCurrency", "x_Budget"]
            grouped = _group_sums(focus.select([*keys, *_SUMS]), keys)
            previous = self._partial[scope]
            if previous is not None:
                grouped = _group_sums(pa.concat_tables([previous, grouped]), keys)
            self._partial[scope] = grouped

    def lines(self, allowances: dict[str, float]) -> list[SummaryLine]:
        lines = []
        for scope, column in _KEYS.items():
            grouped = self._partial[scope]
            for row in [] if grouped is None else grouped.to_pylist():
                budget = row["x_Budget"]
                lines.append(
                    SummaryLine(
                        scope=scope,
                        name=row[column],
                        currency=row["BillingCurrency"],
                        budget=budget,
                        gpu_hours=row["PricingQuantity"],
                        busy_gpu_hours=row["x_BusyGpuHours"],
                        cost=row["BilledCost"],
                        allowance=allowances.get(budget) if budget else None,
                    )
                )
        return sorted(lines, key=lambda x: (x.scope != "team", x.name, x.currency, x.budget or ""))


def _group_sums(table: pa.Table, keys: list[str]) -> pa.Table:
    grouped = table.group_by(keys, use_threads=False).aggregate([(c, "sum") for c in _SUMS])
    names = [c if c in keys else c.removesuffix("_sum") for c in grouped.column_names]
    return grouped.rename_columns(names)


def summarize(focus: pa.Table, allowances: dict[str, float]) -> list[SummaryLine]:
    accumulator = SummaryAccumulator()
    accumulator.add(focus)
    return accumulator.lines(allowances)


def _num(value: float | None, digits: int) -> str:
    return "" if value is None else f"{round(value, digits):.{digits}f}"


def summary_csv(lines: list[SummaryLine]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for x in lines:
        writer.writerow(
            [
                x.scope, x.name, x.currency, x.budget or "", _num(x.gpu_hours, 6),
                _num(x.busy_gpu_hours, 6), _num(x.busy_share, 4), _num(x.cost, 2),
                _num(x.allowance, 3), _num(x.budget_use, 4),
            ]
        )  # fmt: skip
    return out.getvalue().encode()


def summary_png(lines: list[SummaryLine], period: str, top: int = 15) -> bytes:
    """Busy vs idle GPU-hours per team and per person (top by GPU-hours), cost in the labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 8), dpi=100)
    FigureCanvasAgg(figure)
    for index, scope in enumerate(("team", "person")):
        axes = figure.add_subplot(2, 1, index + 1)
        chosen = sorted((x for x in lines if x.scope == scope), key=lambda x: -x.gpu_hours)[:top]
        chosen.reverse()
        labels = [f"{x.name} ({x.cost:,.2f} {x.currency})" for x in chosen]
        busy = [x.busy_gpu_hours for x in chosen]
        idle = [max(x.gpu_hours - x.busy_gpu_hours, 0.0) for x in chosen]
        positions = list(range(len(chosen)))
        axes.barh(positions, busy, color="#1f5f99", label="busy GPU-hours")
        axes.barh(positions, idle, left=busy, color="#9cc3e6", label="idle GPU-hours")
        axes.set_yticks(positions, labels, fontsize=8)
        axes.set_title(f"{period}: GPU-hours per {scope}")
        axes.set_xlabel("GPU-hours (billing-weighted)")
        if chosen:
            axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    # No Software/date metadata: the same summary gives the same PNG bytes.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
