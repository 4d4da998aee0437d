"""What a reclaim saved, in billing-weighted GPU-hours, for `sandboxer_reclaimed_gpu_hours_total`.

Without the reclaim, the idle GPUs would have stayed held until someone noticed. We assume that
happens at the end of the owner's working day, and never count more than `cap`:

    saved = weighted GPUs x (until - reclaimed_at) / 1 h
    until = min(first workday end after reclaimed_at, reclaimed_at + cap)   # EndOfWorkday
    until = reclaimed_at + horizon                                          # Horizon

The workday end is a local time in a configured time zone (default 18:00 UTC, Monday to
Friday). A reclaim on Friday evening counts `cap` (the GPUs would have idled all weekend, but we
stay conservative). Horizon mode counts a fixed `horizon` for every reclaim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class SavingsPolicy:
    mode: Literal["EndOfWorkday", "Horizon"] = "EndOfWorkday"
    workday_end: time = time(18, 0)
    timezone: str = "UTC"
    workdays: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))  # Mon=0
    cap: timedelta = timedelta(hours=12)
    horizon: timedelta = timedelta(hours=4)


def saved_until(reclaimed_at: datetime, policy: SavingsPolicy) -> datetime:
    if policy.mode == "Horizon":
        return reclaimed_at + policy.horizon
    if not policy.workdays:
        return reclaimed_at + policy.cap
    local = reclaimed_at.astimezone(ZoneInfo(policy.timezone))
    day = local.date()
    for _ in range(8):
        end = datetime.combine(day, policy.workday_end, tzinfo=local.tzinfo)
        if end > local and day.weekday() in policy.workdays:
            return min(end.astimezone(UTC), reclaimed_at + policy.cap)
        day += timedelta(days=1)
    return reclaimed_at + policy.cap


def reclaimed_gpu_hours(
    gpus: int, billing_weight: float, reclaimed_at: datetime, policy: SavingsPolicy
) -> float:
    span = saved_until(reclaimed_at, policy) - reclaimed_at
    return max(0.0, gpus * billing_weight * span.total_seconds() / 3600)
