"""What an idle policy would have done to recorded sandboxes, beside what happened.

The recorded rows of one sandbox (`ledger/telemetry.py`) are its owner's behaviour: reports say
when its GPUs were busy, a resume says the owner came back, a suspension by the user, a budget
or a start failure says the owner (or something other than idle reclaim) stopped it. Idle and
lifetime suspensions are the recorded policy's doing, so a replay ignores them and decides
again, with the product's own code: `reclaim.idle.observe` folds each report into the activity
record, `reclaim.policy.effective_policy` merges class and sandbox settings, and
`reclaim.policy.decide` says when the sandbox is due.

After a replayed reclaim the sandbox holds no GPUs until the owner comes back: at the first
recorded sign of use (a busy report, a GPU active after the reclaim, or a resume). A return
within 30 minutes makes the reclaim premature. A reclaim's GPU-hours (GPUs x billing weight)
count from the reclaim to that return, to a stop the owner made anyway, or to the end of the
data, never past it. What happened is measured by the same rules on the recorded suspensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sandboxer.api.sandbox import ExperimentSandboxSpec, SandboxIdle
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.ledger.telemetry import TelemetryRow, order
from sandboxer.reclaim import policy as rules
from sandboxer.reclaim.idle import Activity, GPUActivity, observe
from sandboxer.reclaim.policy import ReclaimPolicy

PREMATURE = timedelta(minutes=30)
POLICY_REASONS = ("Idle", "Lifetime")  # suspensions a replay decides again
EXHAUSTED = "BudgetExhausted"


@dataclass(frozen=True, slots=True)
class Interruption:
    owner: str
    namespace: str
    name: str
    at: datetime
    reason: str

    def to_json(self) -> dict[str, str]:
        at = self.at.isoformat().replace("+00:00", "Z")
        return {"owner": self.owner, "namespace": self.namespace, "name": self.name, "at": at,
                "reason": self.reason}  # fmt: skip


@dataclass(slots=True)
class Figures:
    reclaimed_gpu_hours: float = 0.0
    reclaims: int = 0
    premature_reclaims: int = 0
    exhaustions: int = 0
    interrupted: list[Interruption] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "reclaimedGpuHours": round(self.reclaimed_gpu_hours, 6),
            "reclaims": self.reclaims,
            "prematureReclaims": self.premature_reclaims,
            "exhaustions": self.exhaustions,
            "interrupted": [i.to_json() for i in sorted(self.interrupted, key=_order)],
        }

    def _reclaimed(self, row: TelemetryRow, at: datetime, until: datetime, back: bool) -> None:
        """One reclaim at `at` that held nothing until `until` (`back`: the owner returned)."""
        self.reclaims += 1
        hours = max(0.0, (until - at).total_seconds() / 3600)
        self.reclaimed_gpu_hours += row.gpus * (row.billing_weight or 1.0) * hours
        if back and until - at <= PREMATURE:
            self.premature_reclaims += 1


def _order(i: Interruption) -> tuple[datetime, str, str]:
    return (i.at, i.namespace, i.name)


def by_sandbox(rows: Iterable[TelemetryRow]) -> dict[str, list[TelemetryRow]]:
    out: dict[str, list[TelemetryRow]] = {}
    for row in sorted(rows, key=order):
        out.setdefault(row.sandbox_uid, []).append(row)
    return out


def recorded(histories: Iterable[Sequence[TelemetryRow]], end: datetime) -> Figures:
    """What happened: idle and lifetime suspensions, and budget exhaustions, as recorded."""
    figures = Figures()
    for rows in histories:
        reclaim: TelemetryRow | None = None
        for prev, row in zip([None, *rows], rows, strict=False):
            stopped = row.state == "suspended" and (prev is None or prev.state != "suspended")
            if reclaim is not None and row.state != "suspended":
                back = row.state in ("running", "pending")
                until = resumed_at(row, reclaim.at) if back else row.at
                figures._reclaimed(reclaim, reclaim.at, until, back)
                reclaim = None
            if not stopped or prev is None:
                continue  # a suspension before the window is not this window's
            if row.suspended_reason in POLICY_REASONS:
                reclaim = row
                figures.interrupted.append(_interruption(row, row.at, row.suspended_reason))
            elif row.suspended_reason == EXHAUSTED:
                figures.exhaustions += 1
        if reclaim is not None:
            figures._reclaimed(reclaim, reclaim.at, end, False)
    return figures


def _interruption(row: TelemetryRow, at: datetime, reason: str | None) -> Interruption:
    return Interruption(row.owner, row.namespace, row.name, at, reason or "")


def sandbox_policy(
    cls_name: str, cls: SandboxClassSpec, row: TelemetryRow, *, own_after: bool = True
) -> ReclaimPolicy | None:
    """The policy the operator would apply to the recorded sandbox (None: refused, as the loop
    leaves a sandbox whose overrides the class does not allow). `own_after=False` drops the
    sandbox's own idle.after (a sweep gives every sandbox the swept window)."""
    idle = None
    if row.idle_disabled or (own_after and row.idle_after):
        idle = SandboxIdle(after=row.idle_after if own_after else None, disabled=row.idle_disabled)
    spec = ExperimentSandboxSpec.model_validate(
        {"class": cls_name, "gpus": row.gpus, "lifetime": row.lifetime}
    ).model_copy(update={"idle": idle})
    try:
        return rules.effective_policy(cls_name, cls, spec)
    except rules.PolicyError:
        return None


def _due(policy: ReclaimPolicy, started: datetime, last: datetime) -> tuple[datetime, str] | None:
    """When `decide` first says Reclaim with no new activity after `last`, and why."""
    at = last
    for _ in range(4):  # Keep -> Warn -> Reclaim at most
        decision = rules.decide(policy, now=at, started_at=started, last_active_at=last)
        if isinstance(decision, rules.Reclaim):
            return at, decision.reason
        following = decision.reclaim_at if isinstance(decision, rules.Warn) else decision.next_check
        if following is None:
            return None
        at = max(at, following)
    return None


def _gpus(row: TelemetryRow) -> list[GPUActivity]:
    return [GPUActivity(g.uuid, g.utilization_percent, g.processes, g.last_active_at)
            for g in row.gpu]  # fmt: skip


@dataclass(slots=True)
class _Run:
    started: datetime
    anchor_floor: datetime  # the window starts no earlier (a run begun before the replay's)
    activity: Activity | None = None
    jupyter_last: datetime | None = None  # the latest recorded Jupyter last_activity

    def last(self) -> datetime:
        seen = self.activity.last_active_at if self.activity else None
        times = (self.started, self.anchor_floor, seen, self.jupyter_last)
        return max(t for t in times if t is not None)


def replay(
    histories: Iterable[Sequence[TelemetryRow]],
    policy_for: Any,  # (TelemetryRow) -> ReclaimPolicy | None
    since: datetime,
    end: datetime,
) -> Figures:
    """What `policy_for`'s policies would have done over the recorded rows, up to `end`."""
    figures = Figures()
    for rows in histories:
        _replay_one(rows, policy_for, since, end, figures)
    return figures


def _replay_one(
    rows: Sequence[TelemetryRow], policy_for: Any, since: datetime, end: datetime, out: Figures
) -> None:
    policy: ReclaimPolicy | None = policy_for(rows[0])
    run: _Run | None = None
    reclaimed: tuple[TelemetryRow, datetime] | None = None  # the row it was reclaimed on, when

    def check(now: datetime, last_pass: bool = False) -> None:
        nonlocal run, reclaimed
        if run is None or policy is None:
            return
        if rows[0].gpus == 0 and run.jupyter_last is None and policy.idle_enabled:
            # As the loop: no GPU and no Jupyter reading, so nothing to call it idle by.
            due = _due(replace(policy, idle_enabled=False), run.started, run.last())
        else:
            due = _due(policy, run.started, run.last())
        # A report at `now` is read before the pass at `now` decides; after the last one, no
        # report can come first.
        if due is not None and (due[0] < now or (last_pass and due[0] <= now)):
            out.interrupted.append(_interruption(rows[0], due[0], due[1]))
            reclaimed, run = (rows[0], due[0]), None

    for row in rows:
        new_run = run is not None and row.started_at is not None and row.started_at > run.started
        check(row.started_at if new_run and row.started_at else row.at)  # a resume is use
        holding = row.state in ("running", "pending")
        if row.state == "suspended" and row.suspended_reason in POLICY_REASONS:
            continue  # the recorded policy's decision: the replay makes its own
        if not holding:  # stopped by the owner, a budget, a start failure, or deleted
            if reclaimed is not None:
                out._reclaimed(reclaimed[0], reclaimed[1], row.at, False)
            run, reclaimed = None, None
            continue
        if reclaimed is not None:
            back = _returned(row, reclaimed[1], policy)
            if back is None:
                continue
            out._reclaimed(reclaimed[0], reclaimed[1], back, True)
            reclaimed = None
            run = _Run(back, back) if row.state == "running" else None  # pending: not Ready yet
        elif row.state == "pending":
            if run is not None:  # resumed after a recorded reclaim the replay did not make
                run.activity = Activity(max(run.last(), row.at), False, "")
            continue  # the loop decides nothing before Ready
        elif run is None:
            started = row.started_at or row.at
            run = _Run(started, max(started, since))
        elif row.started_at is not None and row.started_at > run.started:
            # Resumed after a recorded idle reclaim the replay did not make: the owner's return.
            last = max(run.last(), row.started_at)
            run.activity = Activity(last, False, "")
        if run is not None and policy is not None and row.gpu:
            run.activity = observe(run.activity, _gpus(row), row.at, policy)
        seen = row.jupyter_last_activity
        if run is not None and policy is not None and policy.use_jupyter_activity and seen:
            run.jupyter_last = seen if run.jupyter_last is None else max(run.jupyter_last, seen)
    check(end, last_pass=True)
    if reclaimed is not None:
        out._reclaimed(reclaimed[0], reclaimed[1], end, False)


def resumed_at(row: TelemetryRow, after: datetime) -> datetime:
    """When the owner resumed a sandbox suspended at `after`, as far as `row` tells: its new
    run's start, or the row itself (a pending row: spec.suspend is false again)."""
    if row.started_at is not None and row.started_at > after:
        return row.started_at
    return max(after, row.at)


def _returned(row: TelemetryRow, at: datetime, policy: ReclaimPolicy | None) -> datetime | None:
    """When the owner of a sandbox reclaimed at `at` shows up in `row`, if they do."""
    if (row.started_at is not None and row.started_at > at) or row.state == "pending":
        return resumed_at(row, at)  # resumed: it had been suspended here too
    if policy is None:
        return None
    typed = row.jupyter_last_activity
    if policy.use_jupyter_activity and typed is not None and typed > at:
        return typed  # the user worked in the notebook the replay had reclaimed
    if not row.gpu:
        return None
    seen = observe(None, _gpus(row), row.at, policy)
    if seen.last_active_at is not None and seen.last_active_at > at:
        return seen.last_active_at
    return None
