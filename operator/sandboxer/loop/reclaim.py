"""Idle and lifetime reclaim in the loop: per-sandbox activity and the decision it leads to.

Owns each sandbox's memory between passes (start time, activity, the policy in force, what
was announced), and decides again only on a new report, a new policy or start, or when the
last decision said it could change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sandboxer.budgets.matching import BudgetIndex, Person
from sandboxer.ledger.accounting import SandboxRef
from sandboxer.loop.results import Conditions, EventIntent, NotifyIntent, PassResult, Suspends
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import SandboxView, Snapshot
from sandboxer.manifests.labels import TEAM_LABEL
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
from sandboxer.reclaim.savings import reclaimed_gpu_hours


@dataclass(slots=True)
class ReclaimMemory:
    started_at: datetime | None = None
    activity: idle_signals.Activity | None = None
    seen_report: tuple[str, int] | None = None
    warned_for: datetime | None = None  # reclaim time already announced
    policy: ReclaimPolicy | None = None
    checked: bool = False  # decided on the current report, policy and start time
    next_check: datetime | None = None  # when the decision could change without a new report
    policy_key: tuple[int | None, int] | None = None  # (generation, class object) it is for


class ReclaimDecisions:
    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings
        self._memory: dict[str, ReclaimMemory] = {}

    def memory(self, uid: str) -> ReclaimMemory | None:
        """What reclaim knows of a sandbox (status writes show its activity and warning)."""
        return self._memory.get(uid)

    def run(
        self,
        snap: Snapshot,
        refs: Mapping[str, SandboxRef],
        index: BudgetIndex,
        result: PassResult,
        suspends: Suspends,
        conditions: Conditions,
    ) -> None:
        pod_of = {ref.uid: pod_uid for pod_uid, ref in refs.items()}
        by_report: dict[str, dict[str, list[idle_signals.GPUActivity]]] = {}
        live = set()
        for sb in snap.sandboxes.values():
            live.add(sb.uid)
            cls = snap.classes.get(sb.spec.class_)
            mem = self._memory.setdefault(sb.uid, ReclaimMemory())
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
                _notify_owner(index, sb, False, decision.reason, decision.message, result)
            elif isinstance(decision, Warn):
                reason = "IdleWarning" if decision.reason == "Idle" else "LifetimeWarning"
                conditions[sb.uid].append(("Idle", "True", reason, decision.message))
                if mem.warned_for != decision.reclaim_at:
                    mem.warned_for = decision.reclaim_at
                    _notify_owner(index, sb, True, decision.reason, decision.message, result)
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
    index: BudgetIndex,
    sb: SandboxView,
    warning: bool,
    reason: str,
    message: str,
    result: PassResult,
) -> None:
    """Idle and lifetime notices go to the notification webhooks of the owner's budgets."""
    from sandboxer.budgets import notify

    person = Person(sb.owner, sb.owner_groups, sb.namespace)
    for budget in index.budgets_for(person):
        url = budget.spec.notify.webhook_url if budget.spec.notify else None
        if url:
            body = notify.reclaim_payload(sb.namespace, sb.name, sb.owner, warning, reason, message)
            result.notifications.append(NotifyIntent(url, body))
