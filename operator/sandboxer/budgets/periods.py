"""Budget periods on UTC boundaries: months (2026-11) and ISO weeks starting Monday (2026-W48)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

PeriodKind = Literal["Monthly", "Weekly"]
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    def __contains__(self, at: object) -> bool:
        return isinstance(at, datetime) and self.start <= at.astimezone(UTC) < self.end

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


def period_at(kind: PeriodKind, at: datetime) -> Period:
    """The period of `kind` that contains the instant `at`."""
    if at.tzinfo is None:
        raise ValueError(f"timestamp {at.isoformat()} has no time zone; pass an aware UTC time")
    at = at.astimezone(UTC)
    if kind == "Monthly":
        start = datetime(at.year, at.month, 1, tzinfo=UTC)
        return Period(f"{at:%Y-%m}", start, _next_month(start))
    if kind == "Weekly":
        day = datetime(at.year, at.month, at.day, tzinfo=UTC)
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return Period(f"{year}-W{week:02d}", start, start + timedelta(days=7))
    raise ValueError(f"unknown budget period {kind!r}: use Monthly or Weekly")


def parse_period(name: str) -> Period:
    """The period named like 2026-11 or 2026-W48."""
    if m := _MONTH.match(name):
        year, month = int(m[1]), int(m[2])
        if 1 <= month <= 12:
            return period_at("Monthly", datetime(year, month, 1, tzinfo=UTC))
    elif m := _WEEK.match(name):
        year, week = int(m[1]), int(m[2])
        try:
            monday = datetime.fromisocalendar(year, week, 1).replace(tzinfo=UTC)
        except ValueError:
            pass
        else:
            return period_at("Weekly", monday)
    raise ValueError(f"invalid period {name!r}: use YYYY-MM (e.g. 2026-11) or YYYY-Www (2026-W48)")


def _next_month(start: datetime) -> datetime:
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)
