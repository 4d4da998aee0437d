"""When the operator should export: the running month daily, the previous one until it closes.

AWS Data Exports refresh the current period at least daily and may restate the previous one for a
while after it ends; here the previous month is refreshed daily until `end + grace`, then exported
once more as final (closed). Later usage for it then becomes Correction rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sandboxer.chargeback.periods import month_of


@dataclass(frozen=True, slots=True)
class DueExport:
    period: str  # "YYYY-MM"
    final: bool


def due_exports(
    now: datetime, grace: timedelta, last_run: datetime | None = None
) -> list[DueExport]:
    """Exports to run at `now`, given the previous scheduler run (None: never ran)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    if not timedelta(0) <= grace < timedelta(days=28):
        raise ValueError(f"grace {grace} must be between 0 and 28 days")
    current = month_of(now)
    previous = current.previous()
    new_day = last_run is None or last_run.date() < now.date()
    # Never ran: finalising again is harmless (a closed period re-exports identically).
    since = last_run if last_run is not None else previous.start
    close_at = previous.end + grace
    due = []
    if since < close_at <= now:
        due.append(DueExport(previous.label, final=True))
    elif now < close_at and new_day:
        due.append(DueExport(previous.label, final=False))
    if new_day:
        due.append(DueExport(current.label, final=False))
    return due
