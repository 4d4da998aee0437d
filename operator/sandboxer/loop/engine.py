"""One pass of the cluster-wide loop: meter, close hours, check budgets, reclaim idle GPUs.

The engine reads a `Snapshot` and returns what should change (`PassResult`): status patches,
suspensions, Events and notifications. It never calls the Kubernetes API itself, so the same
code runs in the operator, in tests with an injected clock, and in benchmarks. Ledger I/O goes
through the `LedgerStore` (directory or S3) in the commit order of `ledger/checkpoint.py`.

Writes scale with changes, not with sandboxes x time: a sandbox's status is patched when a
condition or its idle/budget state changes, and its usage figures at most once per
`usage_refresh`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sandboxer.admission_rules import BudgetDecision, BudgetRequest
from sandboxer.api.sandbox import SandboxUsage
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import (
    Condition,
    ConditionStatus,
    get_condition,
    rfc3339,
    set_condition,
)
from sandboxer.budgets import admission as budget_admission
from sandboxer.budgets import enforcement
from sandboxer.budgets.admission import NoBudgetPolicy, SandboxRequest
from sandboxer.budgets.matching import Account, Budget, BudgetIndex, Person, accounts_for
from sandboxer.budgets.periods import Period, period_at
from sandboxer.budgets.status import (
    AccountStatus,
    FrictionBook,
    RunningSandbox,
    UsageSlice,
    account_statuses,
    budget_status,
    sandbox_budget,
)
from sandboxer.ledger import checkpoint
from sandboxer.ledger.accounting import SandboxRef, fold_report
from sandboxer.ledger.hourly import ClosedHour
from sandboxer.ledger.pricing import PriceNotFoundError, unit_price
from sandboxer.ledger.rows import UsageRow
from sandboxer.ledger.store import LedgerStore
from sandboxer.loop.snapshot import COST_CENTER_LABEL, TEAM_LABEL, SandboxView, Snapshot
from sandboxer.loop.usage import UsageTotals
from sandboxer.reclaim import idle as idle_signals
from sandboxer.reclaim.policy import (
    Keep,
    PolicyError,
    Reclaim,
    ReclaimPolicy,
    Warn,
    effective_policy,
)
from sandboxer.reclaim.policy import decide as reclaim_decide
from sandboxer.reclaim.savings import SavingsPolicy, reclaimed_gpu_hours

SuspendReason = Literal["Idle", "BudgetExhausted", "Lifetime"]
CondIntent = tuple[str, ConditionStatus, str, str]  # type, status, reason, message


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
    min_runtime: timedelta = timedelta(hours=1)  # admission: refuse if less would be left
    savings: SavingsPolicy = field(default_factory=SavingsPolicy)


@dataclass(frozen=True, slots=True)
class SandboxWrite:
    namespace: str
    name: str
    status: dict[str, Any]  # merge patch of .status (may be empty)
    suspend: bool = False  # also set spec.suspend: true (after the status patch)


@dataclass(frozen=True, slots=True)
class BudgetWrite:
    name: str
    status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventIntent:
    kind: Literal["ExperimentSandbox", "ComputeBudget"]
    namespace: str | None
    name: str
    uid: str
    type: Literal["Normal", "Warning"]
    reason: str
    message: str

    @classmethod
    def about(
        cls, sb: SandboxView, type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> EventIntent:
        return cls("ExperimentSandbox", sb.namespace, sb.name, sb.uid, type, reason, message)


@dataclass(frozen=True, slots=True)
class NotifyIntent:
    url: str
    payload: dict[str, Any]


@dataclass(slots=True)
class PassResult:
    sandbox_writes: list[SandboxWrite] = field(default_factory=list)
    budget_writes: list[BudgetWrite] = field(default_factory=list)
    events: list[EventIntent] = field(default_factory=list)
    notifications: list[NotifyIntent] = field(default_factory=list)
    folded_reports: int = 0
    deferred_reports: int = 0
    closed_hours: list[ClosedHour] = field(default_factory=list)
    reclaimed: list[tuple[str, str, float]] = field(default_factory=list)  # team, reason, hours
    exhausted: list[Account] = field(default_factory=list)  # accounts that ran out this pass
    gpu_wait_seconds: dict[str, float] = field(default_factory=dict)  # owner -> seconds
    unpriced: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _SandboxMemory:
    started_at: datetime | None = None
    activity: idle_signals.Activity | None = None
    seen_report: tuple[str, int] | None = None
    usage_written_at: datetime | None = None
    warned_for: datetime | None = None  # reclaim time already announced
    policy: ReclaimPolicy | None = None
    checked: bool = False  # decided on the current report, policy and start time
    next_check: datetime | None = None  # when the decision could change without a new report
    activity_written: idle_signals.Activity | None = None
    policy_key: tuple[int | None, int] | None = None  # (generation, class object) it is for


@dataclass
class _Derived:
    """Per-pass derived data shared by budget checks, admission and status."""

    now: datetime
    budgets: list[Budget]
    running: list[RunningSandbox]
    groups_of: dict[str, frozenset[str]]
    open_rows: list[UsageRow]
    slices: dict[str, list[UsageSlice]] = field(default_factory=dict)
    index: BudgetIndex = field(default_factory=lambda: BudgetIndex(()))

    def person(self, owner: str, namespace: str) -> Person:
        return Person(owner, self.groups_of.get(owner, frozenset()), namespace)


class Engine:
    def __init__(self, store: LedgerStore, settings: LoopSettings | None = None) -> None:
        self.store = store
        self.settings = settings or LoopSettings()
        self.cursors, self.book = checkpoint.load(store)
        self.totals = UsageTotals()
        self.friction = FrictionBook()
        self.announced: dict[tuple[str, Account], enforcement.Announced] = {}
        self._seen: dict[str, tuple[str, int]] = {}  # node -> (epoch, sequence) folded
        self._unknown_since: dict[str, datetime] = {}
        self._memory: dict[str, _SandboxMemory] = {}
        self._budget_written: dict[str, tuple[dict[str, Any], datetime, list[str], str, Any]] = {}
        self._last: _Derived | None = None
        self._last_pass: datetime | None = None
        self._loaded = False
        self._committed_at: datetime | None = None
        self._ref_cache: dict[str, tuple[Any, SandboxRef]] = {}
        self._running_cache: dict[str, tuple[Any, RunningSandbox]] = {}
        self._index: tuple[Any, BudgetIndex] | None = None

    # -- start-up ---------------------------------------------------------------------------

    def load_history(self, now: datetime) -> int:
        """Sum the closed rows of the periods budgets can look at (month and week of `now`)."""
        start = min(period_at("Monthly", now).start, period_at("Weekly", now).start)
        rows = list(self.store.read_rows(start, now + timedelta(days=1)))
        self.totals.add_closed(rows)
        self._loaded = True
        return len(rows)

    # -- one pass ---------------------------------------------------------------------------

    def run_pass(self, snap: Snapshot) -> PassResult:
        now = snap.now
        if not self._loaded:
            self.load_history(now)
        result = PassResult()
        refs = self._refs(snap)
        commit_now = self._fold(snap, refs, result)
        closed = self.book.close(
            now, self.cursors.node_progress(), snap.rate_card, grace=self.settings.close_grace
        )
        stale = (
            self._committed_at is None
            or now - self._committed_at >= self.settings.checkpoint_interval
        )
        if closed or commit_now or (result.folded_reports and stale):
            self._committed_at = now
            checkpoint.commit(self.store, closed, self.cursors, self.book)
            for hour in closed:
                self.totals.add_closed(hour.rows)
                result.unpriced.update(hour.unpriced)
            if self.book.closed_through is not None and closed:
                self.store.set_watermark(self.book.closed_through)
        result.closed_hours = closed
        derived = self._derive(snap)
        self._last = derived
        waited = (now - self._last_pass).total_seconds() if self._last_pass else 0.0
        self._last_pass = now
        suspends: dict[str, tuple[SuspendReason, str]] = {}
        conditions: dict[str, list[CondIntent]] = defaultdict(list)
        tightest = self._budgets(snap, derived, result, suspends, conditions, waited)
        self._reclaim(snap, refs, result, suspends, conditions)
        self._sandbox_writes(snap, derived, tightest, suspends, conditions, result)
        return result

    def _refs(self, snap: Snapshot) -> dict[str, SandboxRef]:
        refs: dict[str, SandboxRef] = {}
        index = self._budget_index(snap)
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

    def _budget_index(self, snap: Snapshot) -> BudgetIndex:
        """Reused while the budget objects are unchanged (the snapshot builder keeps them)."""
        key = tuple((n, id(s)) for n, s in sorted(snap.budgets.items()))
        if self._index is None or self._index[0] != key:
            self._index = (key, BudgetIndex(Budget(n, s) for n, s in sorted(snap.budgets.items())))
        return self._index[1]

    def _fold(self, snap: Snapshot, refs: Mapping[str, SandboxRef], result: PassResult) -> bool:
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

    def _derive(self, snap: Snapshot) -> _Derived:
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
                per_gpu[sb.spec.class_] = self._hourly_cost(snap, cls, 1)
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
        return _Derived(
            snap.now, budgets, running, groups_of, self.book.open_rows(snap.rate_card),
            index=self._budget_index(snap),
        )  # fmt: skip

    @staticmethod
    def _hourly_cost(snap: Snapshot, cls: SandboxClassSpec, gpus: int) -> float:
        try:
            price = unit_price(
                snap.rate_card, cls.gpu.model, cls.gpu.mig_profile, snap.now, cls.gpu.billing_weight
            )
        except PriceNotFoundError:
            return 0.0
        return float(price.contracted_price) * gpus * cls.gpu.billing_weight

    def _usage_in(self, derived: _Derived, period: Period) -> list[UsageSlice]:
        if period.name not in derived.slices:
            derived.slices[period.name] = self.totals.slices(period, derived.open_rows)
        return derived.slices[period.name]

    # -- budgets ----------------------------------------------------------------------------

    def _budgets(
        self,
        snap: Snapshot,
        derived: _Derived,
        result: PassResult,
        suspends: dict[str, tuple[SuspendReason, str]],
        conditions: dict[str, list[CondIntent]],
        waited: float,
    ) -> dict[str, AccountStatus]:
        """Statuses, warnings and exhaustion actions; returns each running sandbox's tightest
        account (by sandbox uid) for its status.budget."""
        by_uid = {sb.uid: sb for sb in snap.sandboxes.values()}
        # Each budget only sees its own members: work grows with sandboxes, not x budgets.
        members: dict[str, list[RunningSandbox]] = defaultdict(list)
        for rs in derived.running:
            for budget in derived.index.budgets_for(derived.person(rs.owner, rs.namespace)):
                members[budget.name].append(rs)
        self._count_waiting(snap, derived, waited, result)
        tightest: dict[str, AccountStatus] = {}
        for budget in derived.budgets:
            period = period_at(budget.spec.period, snap.now)
            running = members.get(budget.name, [])
            statuses = account_statuses(
                budget,
                period,
                self._budget_slices(derived, budget, period),
                running,
                derived.groups_of,
                snap.now,
                self.friction,
            )
            charged: dict[Account, list[RunningSandbox]] = defaultdict(list)
            for rs in running:
                for account in accounts_for(budget, derived.person(rs.owner, rs.namespace)):
                    charged[account].append(rs)
            exhausted: list[Account] = []
            for account, st in statuses.items():
                actions, self.announced[(budget.name, account)] = enforcement.check(
                    budget, st, self.announced.get((budget.name, account))
                )
                for action in actions:
                    self._announce(budget, action, charged[account], by_uid, result, conditions)
                if st.exhausted:
                    exhausted.append(account)
                for rs in charged[account]:
                    best = tightest.get(rs.uid)
                    if best is None or st.remaining < best.remaining:
                        tightest[rs.uid] = st
            if exhausted:
                for rs, account in enforcement.to_suspend(
                    [budget], exhausted, running, derived.groups_of
                ):
                    message = (
                        f"Suspended: {account.describe()} is exhausted for {period.name}; the "
                        "workspace is kept. Resume after a top-up or in the next period."
                    )
                    suspends.setdefault(rs.uid, ("BudgetExhausted", message))
            self._budget_write(budget, statuses, period, snap.now, result)
        return tightest

    def _budget_slices(self, derived: _Derived, budget: Budget, period: Period) -> list[UsageSlice]:
        """The period's usage slices of this budget's members (grouped once per period)."""
        if f"{budget.name}/{period.name}" not in derived.slices:
            groups: dict[str, list[UsageSlice]] = defaultdict(list)
            for s in self._usage_in(derived, period):
                for b in derived.index.budgets_for(derived.person(s.owner, s.namespace)):
                    groups[b.name].append(s)
            for b in derived.budgets:
                derived.slices[f"{b.name}/{period.name}"] = groups.get(b.name, [])
        return derived.slices[f"{budget.name}/{period.name}"]

    def _announce(
        self,
        budget: Budget,
        action: enforcement.Action,
        charged: list[RunningSandbox],
        by_uid: Mapping[str, SandboxView],
        result: PassResult,
        conditions: dict[str, list[CondIntent]],
    ) -> None:
        from sandboxer.budgets import notify  # local: only needed when something happens

        if isinstance(action, enforcement.Warn):
            cond: tuple[ConditionStatus, str, str] = ("False", "BudgetWarning", action.message)
            kind: Literal["Normal", "Warning"] = "Warning"
            reason = "BudgetWarning"
        elif isinstance(action, enforcement.Exhausted):
            cond = ("True", "BudgetExhausted", action.message)
            kind, reason = "Warning", "BudgetExhausted"
            result.exhausted.append(action.status.account)
            self.friction.exhausted(action.status.period.name, action.status.account)
        else:
            cond = ("False", "BudgetAvailable", action.message)
            kind, reason = "Normal", "BudgetAvailable"
        result.events.append(
            EventIntent("ComputeBudget", None, budget.name, "", kind, reason, action.message)
        )
        for sb in charged:
            conditions[sb.uid].append(("BudgetExceeded", *cond))
            view = by_uid.get(sb.uid)
            if view is not None:
                result.events.append(EventIntent.about(view, kind, reason, action.message))
        if budget.spec.notify and budget.spec.notify.webhook_url:
            result.notifications.append(
                NotifyIntent(budget.spec.notify.webhook_url, notify.budget_payload(action))
            )

    def _count_waiting(
        self, snap: Snapshot, derived: _Derived, waited: float, result: PassResult
    ) -> None:
        """Friction: time sandboxes spent waiting for GPUs, on every account they charge."""
        if waited <= 0:
            return
        for sb in snap.sandboxes.values():
            if not sb.running or sb.condition("Scheduled") != ("False", "InsufficientGPU"):
                continue
            person = derived.person(sb.owner, sb.namespace)
            result.gpu_wait_seconds[sb.owner] = result.gpu_wait_seconds.get(sb.owner, 0.0) + waited
            for budget in derived.index.budgets_for(person):
                period = period_at(budget.spec.period, snap.now)
                self.friction.waited(period.name, accounts_for(budget, person), waited)

    def _budget_write(
        self,
        budget: Budget,
        statuses: Mapping[Account, AccountStatus],
        period: Period,
        now: datetime,
        result: PassResult,
    ) -> None:
        """Budget status: at once when an account runs out or recovers, or starts or stops
        GPUs, else at most once per budget_refresh (usage moves every pass; writes should not)."""
        exhausted = sorted(a.describe() for a, st in statuses.items() if st.exhausted)
        running = sorted((a.describe(), st.running_gpus) for a, st in statuses.items())
        last = self._budget_written.get(budget.name)
        flips = last is None or last[2] != exhausted or last[3] != period.name
        moved = flips or last is None or last[4] != running
        if not moved and last is not None and now - last[1] < self.settings.budget_refresh:
            return
        doc = budget_status(budget, statuses, period).dump()
        since = now if flips or last is None else last[0]["conditions"][0]["lastTransitionTime"]
        doc["conditions"] = [
            Condition(
                type="Exhausted",
                status="True" if exhausted else "False",
                reason="AllowanceUsed" if exhausted else "WithinAllowance",
                message="; ".join(exhausted),
                last_transition_time=since,
            ).dump()
        ]
        if last is not None and last[0] == doc:
            return
        self._budget_written[budget.name] = (doc, now, exhausted, period.name, running)
        result.budget_writes.append(BudgetWrite(budget.name, doc))

    # -- idle reclaim -----------------------------------------------------------------------

    def _reclaim(
        self,
        snap: Snapshot,
        refs: Mapping[str, SandboxRef],
        result: PassResult,
        suspends: dict[str, tuple[SuspendReason, str]],
        conditions: dict[str, list[CondIntent]],
    ) -> None:
        pod_of = {ref.uid: pod_uid for pod_uid, ref in refs.items()}
        by_report: dict[str, dict[str, list[idle_signals.GPUActivity]]] = {}
        live = set()
        for sb in snap.sandboxes.values():
            live.add(sb.uid)
            cls = snap.classes.get(sb.spec.class_)
            mem = self._memory.setdefault(sb.uid, _SandboxMemory())
            started = sb.status.started_at
            if not sb.running or cls is None or started is None:
                continue
            if mem.started_at != started:  # started or resumed: a full idle window again
                mem.started_at, mem.activity, mem.warned_for = started, None, None
                mem.checked = False
            if mem.policy_key != (sb.generation, id(cls)):
                mem.checked = False
                try:
                    mem.policy = effective_policy(sb.spec.class_, cls, sb.spec)
                except PolicyError:
                    mem.policy = None  # refused at admission; an older sandbox is not reclaimed
                mem.policy_key = (sb.generation, id(cls))
            policy = mem.policy
            if policy is None:
                continue
            report = snap.reports.get(sb.status.node or "")
            pod_uid = pod_of.get(sb.uid)
            if report is not None and pod_uid is not None and report.reported_at is not None:
                mark = (report.epoch or "", report.sequence)
                if mem.seen_report != mark:
                    mem.checked = False
                    node = sb.status.node or ""
                    if node not in by_report:
                        by_report[node] = {
                            p.uid: idle_signals.activity_from_report(report, p.uid)
                            for p in report.pods
                        }
                    gpus = by_report[node].get(pod_uid, [])
                    if gpus:
                        mem.activity = idle_signals.observe(
                            mem.activity, gpus, report.reported_at, policy
                        )
                    mem.seen_report = mark
            if mem.checked and (mem.next_check is None or snap.now < mem.next_check):
                continue  # no new report and nothing due: the last decision stands
            activity = mem.activity
            decision = reclaim_decide(
                policy,
                now=snap.now,
                started_at=started,
                last_active_at=activity.last_active_at if activity else None,
                idle_signals=activity.signals if activity and not activity.busy else "",
            )
            mem.checked = True
            mem.next_check = getattr(decision, "next_check", None) or getattr(
                decision, "reclaim_at", None
            )
            if isinstance(decision, Reclaim):
                gpus_held = sb.spec.gpus
                weight = cls.gpu.billing_weight
                saved = reclaimed_gpu_hours(gpus_held, weight, snap.now, self.settings.savings)
                team = snap.namespaces.get(sb.namespace, {}).get(TEAM_LABEL, sb.namespace)
                result.reclaimed.append((team, decision.reason, saved))
                suspends.setdefault(
                    sb.uid,
                    (decision.reason, f"Suspended ({decision.reason.lower()}): {decision.message}"),
                )
                conditions[sb.uid].append(("Idle", "True", "Reclaimed", decision.message))
                self._notify_owner(snap, sb, False, decision.reason, decision.message, result)
            elif isinstance(decision, Warn):
                reason = "IdleWarning" if decision.reason == "Idle" else "LifetimeWarning"
                conditions[sb.uid].append(("Idle", "True", reason, decision.message))
                if mem.warned_for != decision.reclaim_at:
                    mem.warned_for = decision.reclaim_at
                    self._notify_owner(snap, sb, True, decision.reason, decision.message, result)
                    result.events.append(EventIntent.about(sb, "Warning", reason, decision.message))
            elif isinstance(decision, Keep):
                mem.warned_for = None
                busy = activity is not None and activity.busy
                conditions[sb.uid].append(
                    ("Idle", "False", "Active" if busy else "WithinWindow", "")
                )
        for uid in set(self._memory) - live:
            del self._memory[uid]

    def _notify_owner(
        self,
        snap: Snapshot,
        sb: SandboxView,
        warning: bool,
        reason: str,
        message: str,
        result: PassResult,
    ) -> None:
        """Idle and lifetime notices go to the notification webhooks of the owner's budgets."""
        from sandboxer.budgets import notify

        person = Person(sb.owner, sb.owner_groups, sb.namespace)
        for budget in self._budget_index(snap).budgets_for(person):
            url = budget.spec.notify.webhook_url if budget.spec.notify else None
            if url:
                body = notify.reclaim_payload(sb.namespace, sb.name, sb.owner, warning, reason,
                                              message)  # fmt: skip
                result.notifications.append(NotifyIntent(url, body))

    # -- sandbox status ---------------------------------------------------------------------

    def _sandbox_writes(
        self,
        snap: Snapshot,
        derived: _Derived,
        tightest: Mapping[str, AccountStatus],
        suspends: Mapping[str, tuple[SuspendReason, str]],
        conditions: Mapping[str, list[CondIntent]],
        result: PassResult,
    ) -> None:
        open_by_uid: dict[str, list[UsageRow]] = defaultdict(list)
        for row in derived.open_rows:
            open_by_uid[row.sandbox_uid].append(row)
        for sb in snap.sandboxes.values():
            mem = self._memory.setdefault(sb.uid, _SandboxMemory())
            due = (
                mem.usage_written_at is None
                or snap.now - mem.usage_written_at >= self.settings.usage_refresh
            )
            quiet = sb.uid not in conditions and sb.uid not in suspends
            if quiet and sb.running and not due and mem.activity is mem.activity_written:
                continue  # nothing new for this sandbox in this pass
            mem.activity_written = mem.activity
            patch: dict[str, Any] = {}
            conds = list(sb.status.conditions)
            for type_, status, reason, message in conditions.get(sb.uid, []):
                conds = set_condition(
                    conds, type_, status, reason, message, generation=sb.generation, at=snap.now
                )
            if not sb.running:
                idle = get_condition(conds, "Idle")
                if idle is not None and idle.status == "True" and sb.uid not in suspends:
                    conds = set_condition(
                        conds, "Idle", "False", "Suspended", "", generation=sb.generation,
                        at=snap.now,
                    )  # fmt: skip
            if conds != sb.status.conditions:
                patch["conditions"] = [c.dump() for c in conds]
            activity = mem.activity
            idle_since = None
            reclaim_at = None
            if sb.running and activity is not None and not activity.busy:
                idle_since = activity.last_active_at or mem.started_at
            idle_cond = get_condition(conds, "Idle")
            if idle_cond is not None and idle_cond.reason in ("IdleWarning", "LifetimeWarning"):
                reclaim_at = mem.warned_for
            for key, value, current in (
                ("idleSince", idle_since, sb.status.idle_since),
                ("reclaimAt", reclaim_at, sb.status.reclaim_at),
            ):
                if value != current:
                    patch[key] = rfc3339(value) if value else None
            # Usage and budget figures move every pass: write them with a faster change, or
            # at most once per usage_refresh (writes grow with changes, not with time).
            if due or patch or sb.uid in suspends:
                slow = self._slow_fields(sb, tightest.get(sb.uid), open_by_uid.get(sb.uid, []))
                if slow:
                    patch.update(slow)
                    mem.usage_written_at = snap.now
            suspend = sb.uid in suspends and sb.running
            if suspend:
                reason, message = suspends[sb.uid]
                patch["suspendedReason"] = reason
                event_reason = {"Idle": "IdleReclaimed", "Lifetime": "LifetimeExceeded"}.get(
                    reason, "BudgetExhausted"
                )
                result.events.append(EventIntent.about(sb, "Warning", event_reason, message))
            if patch or suspend:
                result.sandbox_writes.append(
                    SandboxWrite(sb.namespace, sb.name, patch, suspend=suspend)
                )

    def _slow_fields(
        self, sb: SandboxView, account: AccountStatus | None, open_rows: list[UsageRow]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if account is not None:
            budget = sandbox_budget(account)
            if budget != sb.status.budget:
                out["budget"] = budget.dump()
        totals = self.totals.sandbox(sb.uid, open_rows)
        if totals.gpu_hours > 0:
            mem = self._memory.get(sb.uid)
            activity = mem.activity if mem else None
            usage = SandboxUsage(
                gpu_hours=round(totals.gpu_hours, 4),
                busy_gpu_hours=round(totals.busy_gpu_hours, 4),
                cost=round(totals.cost, 2),
                currency=totals.currency,
                last_active_at=activity.last_active_at if activity else None,
            )
            if usage != (sb.status.usage or SandboxUsage()):
                out["usage"] = usage.dump()
        return out

    # -- admission --------------------------------------------------------------------------

    def admit(self, request: BudgetRequest, snap: Snapshot) -> BudgetDecision:
        """The budget gate at admission, on the data of `snap` (the latest indexes)."""
        derived = self._last if self._last is not None else self._derive(snap)
        derived = _Derived(
            snap.now,
            [Budget(n, s) for n, s in sorted(snap.budgets.items())],
            [
                r
                for r in derived.running
                if (r.namespace, r.name) != (request.namespace, request.name)
            ],
            {**derived.groups_of, request.owner: frozenset(request.groups)},
            derived.open_rows,
            {},
        )
        person = Person(request.owner, frozenset(request.groups), request.namespace)
        cls = snap.classes.get(request.class_name)
        checks = budget_admission.checks_for(
            derived.budgets,
            person,
            lambda period: self._usage_in(derived, period),
            derived.running,
            derived.groups_of,
            snap.now,
            policy=self.settings.no_budget,
            friction=self.friction,
        )
        decision = budget_admission.decide(
            SandboxRequest(
                person=person,
                name=request.name,
                sandbox_class=request.class_name,
                gpu_model=cls.gpu.model if cls else request.class_name,
                mig_profile=cls.gpu.mig_profile if cls else None,
                gpus=request.gpus,
                billing_weight=request.billing_weight,
                hourly_cost=self._hourly_cost(snap, cls, request.gpus) if cls else 0.0,
            ),
            checks,
            min_runtime=self.settings.min_runtime,
        )
        if not decision.allowed and not request.dry_run:
            for budget, st in checks:
                self.friction.refused(period_at(budget.spec.period, snap.now).name, [st.account])
        return BudgetDecision(decision.allowed, decision.message, decision.reason)
