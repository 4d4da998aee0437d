"""One pass of the cluster-wide loop: meter, close hours, check budgets, reclaim idle GPUs and
suspend sandboxes that never start.

`AccountingLoop.run_pass` reads a `Snapshot` and returns what should change (`PassResult`):
status patches, suspensions, Events and notifications. It never calls the Kubernetes API
itself, so the same code runs in the operator, in tests with an injected clock, and in
benchmarks. Each concern keeps its own state: `metering` (cursors, open hours, ledger commits),
`budgets` (announcements, budget status writes), `reclaim` (per-sandbox activity), `startup`
(start timeouts), `telemetry` (what the pass saw, kept for `sandboxer replay`) and
`status_writes` (what each sandbox was last told); `shared` is what admission reads.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sandboxer.ledger.hourly import HourBook
from sandboxer.ledger.store import LedgerStore
from sandboxer.loop.budgets import BudgetChecks
from sandboxer.loop.figures import FigureBuilder
from sandboxer.loop.metering import Metering
from sandboxer.loop.reclaim import ReclaimDecisions
from sandboxer.loop.results import Conditions, PassResult, Suspends
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.shared import SharedState
from sandboxer.loop.snapshot import Snapshot
from sandboxer.loop.startup import StartupChecks
from sandboxer.loop.status_writes import StatusWriter
from sandboxer.loop.telemetry import TelemetryRecorder
from sandboxer.sandbox_rules import BudgetDecision, BudgetRequest


class AccountingLoop:
    def __init__(self, store: LedgerStore, settings: LoopSettings | None = None) -> None:
        self.settings = settings or LoopSettings()
        self.shared = SharedState()
        self.metering = Metering(store, self.settings)
        self.figures = FigureBuilder()
        self.budgets = BudgetChecks(self.settings, self.shared)
        self.reclaim = ReclaimDecisions(self.settings)
        self.startup = StartupChecks(self.settings)
        self.telemetry = TelemetryRecorder(store, self.settings)
        self.status_writes = StatusWriter(self.settings, self.reclaim)
        self._last_pass: datetime | None = None
        self._loaded = False

    @property
    def store(self) -> LedgerStore:
        return self.metering.store

    @property
    def book(self) -> HourBook:
        return self.metering.book

    def load_history(self, now: datetime) -> int:
        """Sum the closed rows of the periods budgets can look at (month and week of `now`)."""
        rows = self.metering.history(now)
        with self.shared.lock:
            self.shared.totals.add_closed(rows)
        self._loaded = True
        return len(rows)

    def run_pass(self, snap: Snapshot) -> PassResult:
        now = snap.now
        if not self._loaded:
            self.load_history(now)
        result = PassResult()
        shared = self.shared
        with shared.lock:  # admission may derive figures from the open hours before a pass
            refs = self.metering.refs(snap, self.figures.budget_index(snap))
            commit_now = self.metering.fold(snap, refs, result)
            closed = self.metering.close(snap)
        if self.metering.commit_due(now, bool(closed), commit_now, result.folded_reports):
            self.metering.commit(closed)  # ledger I/O: outside the lock
            with shared.lock:
                for hour in closed:
                    shared.totals.add_closed(hour.rows)
                    result.unpriced.update(hour.unpriced)
            self.metering.advance_watermark(closed)
        result.closed_hours = closed
        waited = (now - self._last_pass).total_seconds() if self._last_pass else 0.0
        self._last_pass = now
        suspends: Suspends = {}
        conditions: Conditions = defaultdict(list)
        with shared.lock:
            figures = shared.last = self.figures.build(snap, self.metering.open_rows(snap))
            tightest = self.budgets.run(snap, figures, result, suspends, conditions, waited)
        self.reclaim.run(snap, refs, figures.index, result, suspends, conditions)
        self.startup.run(snap, result, suspends, conditions)
        self.telemetry.run(snap, refs, suspends)  # after every decision that suspends
        self.status_writes.run(
            snap, figures, shared.totals, tightest, suspends, conditions, result
        )  # totals change only in this thread: reading them needs no lock
        return result

    def admit(self, request: BudgetRequest, snap: Snapshot) -> BudgetDecision:
        """The budget gate at admission, on the data of `snap` (the latest indexes)."""
        with self.shared.lock:
            last = self.shared.last
            if last is None:
                last = self.figures.build(snap, self.metering.open_rows(snap))
            return self.budgets.admit(request, snap, last)
