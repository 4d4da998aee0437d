"""Idle and lifetime reclaim in the loop: per-sandbox activity and the decision it leads to.

Owns each sandbox's memory between passes (start time, activity, the policy in force, what
was announced), and decides again only on a new report, a new policy or start, or when the
last decision said it could change.

The memory also lives in the sandbox's status (`idleSince`, `warnedAt`, `reclaimAt`, written by
`status_writes`), so a restarted or new leader continues the same schedule: it seeds the memory
of a running sandbox from there the first time it sees it. Without `idleSince` (the sandbox was
busy, or no leader saw it idle) the window starts when this leader first saw it, never earlier:
no reclaim before a full window of quiet this leader watched. Times are whole seconds, as status
stores them, so a schedule read back from status is the one that was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sandboxer.budgets.matching import BudgetIndex, Person
from sandboxer.ledger.accounting import SandboxRef
from sandboxer.loop.results import Conditions, EventIntent, NotifyIntent, PassResult, Suspends
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import JupyterReading, SandboxView, Snapshot
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
    quiet_from: datetime | None = None  # the idle window starts no earlier (fresh leader)
    carried: bool = False  # quiet_from came from status: the sandbox was idle before
    warned_at: datetime | None = None  # when the warning for warned_for went out
    jupyter_last: datetime | None = None  # the user's last activity, as Jupyter said
    jupyter_seen: datetime | None = None  # when that reading was taken
    jupyter_note: str = ""  # the reading (or why there is none), for condition messages

    def last_active(self) -> datetime | None:
        """The latest sign of use: a busy GPU or the user in Jupyter, whichever is later."""
        gpu = self.activity.last_active_at if self.activity else None
        return max((t for t in (gpu, self.jupyter_last) if t is not None), default=None)

    def idle_since(self) -> datetime | None:
        """Where the idle window starts, for status; None while busy or not yet observed."""
        activity = self.activity
        observed = activity is not None or self.jupyter_last is not None
        if self.started_at is None or (not observed and not self.carried):
            return None
        if activity is not None and activity.busy:
            return None
        last = self.last_active()
        return max(t for t in (self.started_at, self.quiet_from, last) if t is not None)

    def fold_jupyter(self, reading: JupyterReading | str | None) -> None:
        """Take a new Jupyter reading (or the reason there is none) into the memory."""
        if isinstance(reading, JupyterReading):
            if reading.read_at == self.jupyter_seen:
                return
            self.jupyter_seen, self.checked = reading.read_at, False
            self.jupyter_last = _second(reading.last_activity)
            self.jupyter_note = (
                f"Jupyter last active {self.jupyter_last:%H:%M:%S} UTC ({reading.kernels} "
                f"kernel(s), {reading.connections} connection(s))"
            )
        elif reading is not None and self.jupyter_note != f"Jupyter activity not read: {reading}":
            self.jupyter_note, self.checked = f"Jupyter activity not read: {reading}", False


def seeded(sb: SandboxView, now: datetime, leader_since: datetime) -> ReclaimMemory:
    """The memory of a sandbox this leader sees for the first time, from its status.

    A running sandbox keeps the window and warning its status records. Without `idleSince`, one
    that started before this leader's first pass gets its window from now (it may have been
    busy a moment ago); one that started since is watched from its start as always.
    """
    status = sb.status
    mem = ReclaimMemory(started_at=status.started_at)
    if not sb.running or status.started_at is None:
        return mem
    if status.reclaim_at is not None and status.reclaim_at > status.started_at:
        mem.warned_for = _second(status.reclaim_at)  # announced already (idle or lifetime)
        mem.warned_at = _second(status.warned_at or now)  # an older status has no warnedAt
    if status.idle_since is not None:
        mem.quiet_from, mem.carried = _second(status.idle_since), True
    elif status.started_at < leader_since:
        mem.quiet_from = _second(now)
    return mem


def _second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


class ReclaimDecisions:
    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings
        self._memory: dict[str, ReclaimMemory] = {}
        self._since: datetime | None = None  # this leader's first pass

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
        if self._since is None:
            self._since = snap.now
        for sb in snap.sandboxes.values():
            live.add(sb.uid)
            cls = snap.classes.get(sb.spec.class_)
            mem = self._memory.get(sb.uid)
            if mem is None:
                mem = self._memory[sb.uid] = seeded(sb, snap.now, self._since)
            started = sb.status.started_at
            if not sb.running or cls is None or started is None:
                continue
            if mem.started_at != started:  # started or resumed: a full idle window again
                mem.started_at, mem.activity, mem.warned_for = started, None, None
                mem.quiet_from, mem.carried, mem.warned_at = None, False, None
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
                        at = _second(report.reported_at)
                        mem.activity = idle_signals.observe(mem.activity, gpus, at, policy)
                    mem.seen_report = mark
            if policy.use_jupyter_activity:
                mem.fold_jupyter(snap.jupyter.get((sb.namespace, sb.name)))
                if sb.spec.gpus == 0 and mem.jupyter_last is None:
                    # No GPU and no Jupyter reading: nothing could tell it is in use, so it is
                    # not idle-reclaimed (its lifetime still counts).
                    policy = replace(policy, idle_enabled=False)
            if mem.checked and (mem.next_check is None or snap.now < mem.next_check):
                continue  # no new report and nothing due: the last decision stands
            activity = mem.activity
            last = mem.last_active()
            signals = activity.signals if activity and not activity.busy else ""
            if sb.spec.gpus == 0:
                signals = ""  # no GPU to speak of; Jupyter alone decides
            if mem.jupyter_note and policy.use_jupyter_activity:
                signals = "; ".join(x for x in (signals, mem.jupyter_note) if x)
            decision = reclaim_decide(
                policy,
                now=snap.now,
                started_at=started,
                last_active_at=max(t for t in (last, mem.quiet_from, started) if t is not None),
                idle_signals=signals,
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
                    mem.warned_for, mem.warned_at = decision.reclaim_at, _second(snap.now)
                    _notify_owner(index, sb, True, decision.reason, decision.message, result)
                    result.events.append(EventIntent.about(sb, "Warning", reason, decision.message))
            elif isinstance(decision, Keep):
                mem.warned_for = mem.warned_at = None
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
