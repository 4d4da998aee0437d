"""Metering in the loop: fold node reports into open hours, close hours, commit the ledger.

Owns the fold cursors, the open hours and what was folded. Ledger I/O goes through the
`LedgerStore` (directory or S3) in the commit order of `ledger/checkpoint.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sandboxer.budgets.matching import BudgetIndex, Person
from sandboxer.budgets.periods import period_at
from sandboxer.ledger import checkpoint
from sandboxer.ledger.accounting import SandboxRef, fold_report
from sandboxer.ledger.hourly import ClosedHour
from sandboxer.ledger.rows import UsageRow
from sandboxer.ledger.store import LedgerStore
from sandboxer.loop.results import PassResult
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import Snapshot
from sandboxer.manifests.labels import COST_CENTER_LABEL, TEAM_LABEL


class Metering:
    def __init__(self, store: LedgerStore, settings: LoopSettings) -> None:
        self.store = store
        self.settings = settings
        self.cursors, self.book = checkpoint.load(store)
        self._seen: dict[str, tuple[str, int]] = {}  # node -> (epoch, sequence) folded
        self._unknown_since: dict[str, datetime] = {}
        self._committed_at: datetime | None = None
        self._ref_cache: dict[str, tuple[Any, SandboxRef]] = {}

    def history(self, now: datetime) -> list[UsageRow]:
        """The closed rows of the periods budgets can look at (month and week of `now`)."""
        start = min(period_at("Monthly", now).start, period_at("Weekly", now).start)
        return list(self.store.read_rows(start, now + timedelta(days=1)))

    def refs(self, snap: Snapshot, index: BudgetIndex) -> dict[str, SandboxRef]:
        """Each known pod's sandbox as the ledger names it (owner, team, budget, GPU)."""
        refs: dict[str, SandboxRef] = {}
        cache = self._ref_cache
        self._ref_cache = {}
        for pod_uid, key in snap.pods.items():
            sb = snap.sandboxes.get(key)
            cls = snap.classes.get(sb.spec.class_) if sb else None
            if sb is None or cls is None:
                continue
            labels = snap.namespaces.get(sb.namespace, {})
            ref_key = (id(sb), id(cls), id(index), tuple(sorted(labels.items())))
            hit = cache.get(pod_uid)
            if hit is not None and hit[0] == ref_key:  # same view, class, budgets and labels
                self._ref_cache[pod_uid] = hit
                refs[pod_uid] = hit[1]
                continue
            found = index.budgets_for(Person(sb.owner, sb.owner_groups, sb.namespace))
            budget = found[0].name if found else None
            team = labels.get(TEAM_LABEL)
            cost_center = labels.get(COST_CENTER_LABEL)
            if budget is not None:  # the budget may name the team / cost centre
                spec = snap.budgets[budget]
                team = spec.team or team
                cost_center = spec.cost_center or cost_center
            refs[pod_uid] = SandboxRef(
                uid=sb.uid,
                name=sb.name,
                namespace=sb.namespace,
                owner=sb.owner,
                team=team,
                cost_center=cost_center,
                sandbox_class=sb.spec.class_,
                gpu_model=cls.gpu.model,
                mig_profile=cls.gpu.mig_profile,
                billing_weight=cls.gpu.billing_weight,
                budget=budget,
            )
            self._ref_cache[pod_uid] = (ref_key, refs[pod_uid])
        return refs

    def fold(self, snap: Snapshot, refs: Mapping[str, SandboxRef], result: PassResult) -> bool:
        """Fold new reports into the open hours; True when an agent restarted (commit now)."""
        commit_now = False
        for node, report in sorted(snap.reports.items()):
            mark = (report.epoch or "", report.sequence)
            if self._seen.get(node) == mark:
                continue
            if self._waiting_for_pods(snap.now, report.pods, refs):
                result.deferred_reports += 1
                continue
            folded = fold_report(self.cursors, node, report, refs)
            self._seen[node] = mark
            if folded.accepted:
                result.folded_reports += 1
                self.book.add(folded.deltas)
                commit_now = commit_now or folded.epoch_changed
        return commit_now

    def _waiting_for_pods(
        self, now: datetime, pods: Sequence[Any], refs: Mapping[str, SandboxRef]
    ) -> bool:
        """A report naming a pod we do not know yet is held back (its usage would otherwise
        be unattributed forever) until the pod index catches up or the grace runs out."""
        waiting = False
        for pod in pods:
            if not pod.uid or pod.uid in refs:
                self._unknown_since.pop(pod.uid, None)
                continue
            first = self._unknown_since.setdefault(pod.uid, now)
            waiting = waiting or now - first < self.settings.unknown_pod_grace
        return waiting

    def close(self, snap: Snapshot) -> list[ClosedHour]:
        """Hours every node has reported past (or whose grace ran out), taken out of the book."""
        return self.book.close(
            snap.now, self.cursors.node_progress(), snap.rate_card, grace=self.settings.close_grace
        )

    def commit_due(self, now: datetime, closed: bool, commit_now: bool, folded: int) -> bool:
        """Commit closed hours and agent restarts at once, other folds at most per interval."""
        stale = (
            self._committed_at is None
            or now - self._committed_at >= self.settings.checkpoint_interval
        )
        if closed or commit_now or (folded and stale):
            self._committed_at = now
            return True
        return False

    def commit(self, closed: list[ClosedHour]) -> None:
        """Ledger I/O: rows of closed hours, then cursors and open hours."""
        checkpoint.commit(self.store, closed, self.cursors, self.book)

    def advance_watermark(self, closed: list[ClosedHour]) -> None:
        """After the closed rows count in the totals: exports may read through them."""
        if self.book.closed_through is not None and closed:
            self.store.set_watermark(self.book.closed_through)

    def open_rows(self, snap: Snapshot) -> list[UsageRow]:
        return self.book.open_rows(snap.rate_card)
