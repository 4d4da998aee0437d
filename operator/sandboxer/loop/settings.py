"""The loop's cadence and thresholds: the one place their defaults live.

`controller/config.py` (flags and environment) and the chart's values read these defaults, so a
changed default changes everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sandboxer.budgets.gate import NoBudgetPolicy
from sandboxer.reclaim.savings import SavingsPolicy


@dataclass(frozen=True, slots=True)
class LoopSettings:
    interval: float = 10.0  # seconds between passes
    usage_refresh: timedelta = timedelta(minutes=5)  # least time between usage-only writes
    budget_refresh: timedelta = timedelta(minutes=1)  # least time between budget status writes
    unknown_pod_grace: timedelta = timedelta(minutes=2)  # wait for the pod index to catch up
    close_grace: timedelta = timedelta(minutes=10)  # hours close this long after their end
    # Cursors are saved with every closed hour and agent restart, else at most this often:
    # reports are cumulative, so a restart re-folds from the last save without loss.
    checkpoint_interval: timedelta = timedelta(minutes=1)
    no_budget: NoBudgetPolicy | None = field(default_factory=NoBudgetPolicy)
    # An admitted sandbox counts at once, until a pass sees it (or this long, if it never came).
    reservation_ttl: timedelta = timedelta(minutes=2)
    savings: SavingsPolicy = field(default_factory=SavingsPolicy)
    # Telemetry files (what `sandboxer replay` reads) older than this are deleted.
    telemetry_retention: timedelta = timedelta(days=90)
