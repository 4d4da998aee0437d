"""Budgets in the loop: account statuses, warnings, exhaustion, and the admission gate.

Owns what was announced per account and what was last written to each budget's status. The
friction counters and usage totals it reads belong to `SharedState`; callers hold its lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sandboxer.api.budget import ComputeBudgetStatus
from sandboxer.api.types import Condition, ConditionStatus
from sandboxer.budgets import enforcement
from sandboxer.budgets import gate as budget_gate
from sandboxer.budgets.gate import SandboxRequest
from sandboxer.budgets.matching import Account, Budget, Person, accounts_for
from sandboxer.budgets.periods import Period, period_at
from sandboxer.budgets.status import (
    AccountStatus,
    RunningSandbox,
    account_statuses,
    budget_status,
)
from sandboxer.loop.figures import PassFigures, hourly_cost
from sandboxer.loop.results import (
    BudgetWrite,
    Conditions,
    EventIntent,
    NotifyIntent,
    PassResult,
    Suspends,
)
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.shared import Reservation, SharedState
from sandboxer.loop.snapshot import SandboxView, Snapshot
from sandboxer.sandbox_rules import BudgetDecision, BudgetRequest


class BudgetChecks:
    def __init__(self, settings: LoopSettings, shared: SharedState) -> None:
        self.settings = settings
        self.shared = shared
        self.announced: dict[tuple[str, Account], enforcement.Announced] = {}
        self._seeded: set[str] = set()  # budgets whose stored status this leader has read
        self._written: dict[str, tuple[dict[str, Any], datetime, list[str], str, Any]] = {}

    def run(
        self,
        snap: Snapshot,
        figures: PassFigures,
        result: PassResult,
        suspends: Suspends,
        conditions: Conditions,
        waited: float,
    ) -> dict[str, AccountStatus]:
        """Statuses, warnings and exhaustion actions; returns each running sandbox's tightest
        account (by sandbox uid) for its status.budget."""
        by_uid = {sb.uid: sb for sb in snap.sandboxes.values()}
        # Each budget only sees its own members: work grows with sandboxes, not x budgets.
        members: dict[str, list[RunningSandbox]] = defaultdict(list)
        for rs in figures.running:
            for budget in figures.index.budgets_for(figures.person(rs.owner, rs.namespace)):
                members[budget.name].append(rs)
        self._count_waiting(snap, figures, waited, result)
        tightest: dict[str, AccountStatus] = {}
        for budget in figures.budgets:
            period = period_at(budget.spec.period, snap.now)
            if budget.name not in self._seeded:
                self._seed(budget.name, period.name, snap.budget_statuses.get(budget.name))
            running = members.get(budget.name, [])
            statuses = account_statuses(
                budget,
                period,
                figures.budget_slices(self.shared.totals, budget, period),
                running,
                figures.groups_of,
                snap.now,
                self.shared.friction,
            )
            charged: dict[Account, list[RunningSandbox]] = defaultdict(list)
            for rs in running:
                for account in accounts_for(budget, figures.person(rs.owner, rs.namespace)):
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
                    [budget], exhausted, running, figures.groups_of
                ):
                    message = (
                        f"Suspended: {account.describe()} is exhausted for {period.name}; the "
                        "workspace is kept. Resume after a top-up or in the next period."
                    )
                    suspends.setdefault(rs.uid, ("BudgetExhausted", message))
            self._budget_write(budget, statuses, period, snap.now, result)
        return tightest

    def _seed(self, name: str, period: str, stored: Mapping[str, Any] | None) -> None:
        """Continue where the previous leader left off: its announcements and friction counters
        are in the budget's status (this process counted only what happened since it started)."""
        self._seeded.add(name)
        try:
            status = ComputeBudgetStatus.model_validate(stored or {})
        except ValueError:
            return  # not ours to repair; the next write replaces it
        if status.period is None or status.period.name != period:
            return  # a new period starts from zero anyway
        for subject in status.subjects:
            if subject.kind not in ("User", "Namespace", "Shared"):
                continue
            account = Account(name, subject.kind, subject.name)  # type: ignore[arg-type]
            counted = self.shared.friction.get(period, account)
            counted.refusals += subject.refusals
            counted.exhaustions += subject.exhaustions
            counted.gpu_wait_seconds += subject.gpu_wait_seconds
            self.announced.setdefault(
                (name, account),
                enforcement.Announced(
                    period, frozenset(subject.warned), subject.announced_exhausted
                ),
            )

    def _announce(
        self,
        budget: Budget,
        action: enforcement.Action,
        charged: list[RunningSandbox],
        by_uid: Mapping[str, SandboxView],
        result: PassResult,
        conditions: Conditions,
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
            self.shared.friction.exhausted(action.status.period.name, action.status.account)
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
        self, snap: Snapshot, figures: PassFigures, waited: float, result: PassResult
    ) -> None:
        """Friction: time sandboxes spent waiting for GPUs, on every account they charge."""
        if waited <= 0:
            return
        for sb in snap.sandboxes.values():
            if not sb.running or sb.condition("Scheduled") != ("False", "InsufficientGPU"):
                continue
            person = figures.person(sb.owner, sb.namespace)
            result.gpu_wait_seconds[sb.owner] = result.gpu_wait_seconds.get(sb.owner, 0.0) + waited
            for budget in figures.index.budgets_for(person):
                period = period_at(budget.spec.period, snap.now)
                self.shared.friction.waited(period.name, accounts_for(budget, person), waited)

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
        announced = {a: self._marks(budget.name, a, period.name) for a in statuses}
        # An announcement is written at once too: a leader taking over must not repeat it.
        running = sorted(
            (a.describe(), st.running_gpus, sorted(announced[a][0]), announced[a][1])
            for a, st in statuses.items()
        )
        last = self._written.get(budget.name)
        flips = last is None or last[2] != exhausted or last[3] != period.name
        moved = flips or last is None or last[4] != running
        if not moved and last is not None and now - last[1] < self.settings.budget_refresh:
            return
        doc = budget_status(budget, statuses, period, announced).dump()
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
        self._written[budget.name] = (doc, now, exhausted, period.name, running)
        result.budget_writes.append(BudgetWrite(budget.name, doc))

    def _marks(self, budget: str, account: Account, period: str) -> tuple[frozenset[int], bool]:
        done = self.announced.get((budget, account))
        if done is None or done.period != period:
            return frozenset(), False
        return done.warned, done.exhausted

    def admit(self, request: BudgetRequest, snap: Snapshot, last: PassFigures) -> BudgetDecision:
        """The budget gate on the last pass's running sandboxes and usage, and the budgets,
        classes and prices of `snap`."""
        key = (request.namespace, request.name)
        held = self._reservations(last, snap.now, key)
        figures = PassFigures(
            snap.now,
            [Budget(n, s) for n, s in sorted(snap.budgets.items())],
            [r for r in last.running if (r.namespace, r.name) != key] + [h.sandbox for h in held],
            {
                **last.groups_of,
                **{h.sandbox.owner: h.groups for h in held},
                request.owner: frozenset(request.groups),
            },
            last.open_rows,
            {},
        )
        person = Person(request.owner, frozenset(request.groups), request.namespace)
        cls = snap.classes.get(request.class_name)
        friction = self.shared.friction
        checks = budget_gate.checks_for(
            figures.budgets,
            person,
            lambda period: figures.usage_in(self.shared.totals, period),
            figures.running,
            figures.groups_of,
            snap.now,
            policy=self.settings.no_budget,
            friction=friction,
        )
        decision = budget_gate.decide(
            SandboxRequest(
                person=person,
                name=request.name,
                sandbox_class=request.class_name,
                gpu_model=cls.gpu.model if cls else request.class_name,
                mig_profile=cls.gpu.mig_profile if cls else None,
                gpus=request.gpus,
                billing_weight=request.billing_weight,
                hourly_cost=hourly_cost(snap, cls, request.gpus) if cls else 0.0,
            ),
            checks,
        )
        if not decision.allowed and not request.dry_run:
            for budget, st in checks:
                friction.refused(period_at(budget.spec.period, snap.now).name, [st.account])
        if decision.allowed and not request.dry_run and request.gpus > 0:
            # Counted from now on, so a burst inside one pass cannot pass a cap together.
            self.shared.reservations[key] = Reservation(
                RunningSandbox(
                    uid="", name=request.name, namespace=request.namespace, owner=request.owner,
                    sandbox_class=request.class_name, gpus=request.gpus,
                    billing_weight=request.billing_weight,
                    hourly_cost=hourly_cost(snap, cls, request.gpus) if cls else 0.0,
                ),
                frozenset(request.groups),
                snap.now + self.settings.reservation_ttl,
            )  # fmt: skip
        return BudgetDecision(decision.allowed, decision.message, decision.reason)

    def _reservations(
        self, last: PassFigures, now: datetime, asking: tuple[str, str]
    ) -> list[Reservation]:
        """The reservations still to count: a pass has not seen them run, and they are fresh.

        A sandbox asking again (an update) replaces its own reservation.
        """
        seen = {(r.namespace, r.name): r.gpus for r in last.running}
        book = self.shared.reservations
        for key, held in list(book.items()):
            if seen.get(key, -1) >= held.sandbox.gpus or held.until <= now:
                del book[key]  # confirmed by a pass, or the create never came
        return [held for key, held in book.items() if key != asking]
