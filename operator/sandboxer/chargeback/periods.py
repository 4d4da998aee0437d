"""Billing periods: UTC calendar months, [start, end). A day selects month-to-date through it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_PERIOD = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    label: str  # "YYYY-MM": the BILLING_PERIOD partition value
    start: datetime
    end: datetime
    cutoff: datetime  # usage with hour < cutoff is exported (== end for a whole month)

    @property
    def partition(self) -> str:
        return f"BILLING_PERIOD={self.label}"

    def previous(self) -> BillingPeriod:
        return month_of(self.start - timedelta(days=1))

    def next(self) -> BillingPeriod:
        return month_of(self.end)


def month_of(instant: datetime) -> BillingPeriod:
    instant = instant.astimezone(UTC)
    start = datetime(instant.year, instant.month, 1, tzinfo=UTC)
    end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
    return BillingPeriod(f"{start:%Y-%m}", start, end, end)


def parse_period(text: str) -> BillingPeriod:
    """ "2026-11" → the month; "2026-11-26" → November, month-to-date through the 26th."""
    match = _PERIOD.match(text.strip())
    if not match:
        raise ValueError(f"invalid period {text!r}: use YYYY-MM (a month) or YYYY-MM-DD (a day)")
    year, month, day = match.groups()
    try:
        first = datetime(int(year), int(month), int(day or 1), tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"invalid period {text!r}: {exc}") from None
    period = month_of(first)
    if day is None:
        return period
    return BillingPeriod(period.label, period.start, period.end, first + timedelta(days=1))
