"""Sandbox status writes: one patch per sandbox per pass, and only when something changed.

Writes scale with changes, not with sandboxes x time: a sandbox's status is patched when a
condition or its idle/budget state changes, and its usage figures at most once per
`usage_refresh`. Owns what was last written per sandbox; reads reclaim's memory for activity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandboxer.api.sandbox import SandboxUsage
from sandboxer.api.types import get_condition, rfc3339, set_condition
from sandboxer.budgets.status import AccountStatus, sandbox_budget
from sandboxer.ledger.rows import UsageRow
from sandboxer.loop.figures import PassFigures
from sandboxer.loop.reclaim import ReclaimDecisions
from sandboxer.loop.results import Conditions, EventIntent, PassResult, SandboxWrite, Suspends
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import SandboxView, Snapshot
from sandboxer.loop.usage import UsageTotals
from sandboxer.reclaim import idle as idle_signals


@dataclass(slots=True)
class _Written:
    usage_at: datetime | None = None  # when usage figures were last written
    activity: idle_signals.Activity | None = None  # the activity the last write saw


class StatusWriter:
    def __init__(self, settings: LoopSettings, reclaim: ReclaimDecisions) -> None:
        self.settings = settings
        self.reclaim = reclaim
        self._written: dict[str, _Written] = {}

    def run(
        self,
        snap: Snapshot,
        figures: PassFigures,
        totals: UsageTotals,
        tightest: Mapping[str, AccountStatus],
        suspends: Suspends,
        conditions: Conditions,
        result: PassResult,
    ) -> None:
        open_by_uid: dict[str, list[UsageRow]] = defaultdict(list)
        for row in figures.open_rows:
            open_by_uid[row.sandbox_uid].append(row)
        written = self._written
        self._written = {}
        for sb in snap.sandboxes.values():
            last = self._written[sb.uid] = written.get(sb.uid) or _Written()
            mem = self.reclaim.memory(sb.uid)
            activity = mem.activity if mem else None
            due = last.usage_at is None or snap.now - last.usage_at >= self.settings.usage_refresh
            quiet = sb.uid not in conditions and sb.uid not in suspends
            if quiet and sb.running and not due and activity is last.activity:
                continue  # nothing new for this sandbox in this pass
            last.activity = activity
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
            # Reclaim's memory, kept in status so a restarted leader continues it (whole
            # seconds, as stored: a value read back compares equal and is not rewritten).
            idle_since = mem.idle_since() if sb.running and mem else None
            warned_at = reclaim_at = None
            idle_cond = get_condition(conds, "Idle")
            if idle_cond is not None and idle_cond.reason in ("IdleWarning", "LifetimeWarning"):
                reclaim_at = mem.warned_for if mem else None
                warned_at = mem.warned_at if reclaim_at and mem else None
            for key, value, current in (
                ("idleSince", idle_since, sb.status.idle_since),
                ("warnedAt", warned_at, sb.status.warned_at),
                ("reclaimAt", reclaim_at, sb.status.reclaim_at),
            ):
                if _second(value) != _second(current):
                    patch[key] = rfc3339(value) if value else None
            # Usage and budget figures move every pass: write them with a faster change, or
            # at most once per usage_refresh (writes grow with changes, not with time).
            if due or patch or sb.uid in suspends:
                slow = _slow_fields(
                    sb, tightest.get(sb.uid), totals, open_by_uid.get(sb.uid, []), activity
                )
                if slow:
                    patch.update(slow)
                    last.usage_at = snap.now
            suspend = sb.uid in suspends and sb.running
            if suspend:
                reason, message = suspends[sb.uid]
                patch["suspendedReason"] = reason
                event_reason = {
                    "Idle": "IdleReclaimed", "Lifetime": "LifetimeExceeded",
                    "StartFailed": "StartFailed",
                }.get(reason, "BudgetExhausted")  # fmt: skip
                result.events.append(EventIntent.about(sb, "Warning", event_reason, message))
            if patch or suspend:
                result.sandbox_writes.append(
                    SandboxWrite(sb.namespace, sb.name, patch, suspend=suspend)
                )


def _second(at: datetime | None) -> datetime | None:
    return at.replace(microsecond=0) if at is not None else None


def _slow_fields(
    sb: SandboxView,
    account: AccountStatus | None,
    totals: UsageTotals,
    open_rows: list[UsageRow],
    activity: idle_signals.Activity | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if account is not None:
        budget = sandbox_budget(account)
        if budget != sb.status.budget:
            out["budget"] = budget.dump()
    sums = totals.sandbox(sb.uid, open_rows)
    if sums.gpu_hours > 0:
        usage = SandboxUsage(
            gpu_hours=round(sums.gpu_hours, 4),
            busy_gpu_hours=round(sums.busy_gpu_hours, 4),
            cost=round(sums.cost, 2),
            currency=sums.currency,
            last_active_at=activity.last_active_at if activity else None,
        )
        if usage != (sb.status.usage or SandboxUsage()):
            out["usage"] = usage.dump()
    return out
