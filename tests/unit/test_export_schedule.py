"""due_exports: the running month daily, the previous month until its close, then final once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandboxer.chargeback.schedule import DueExport, due_exports

GRACE = timedelta(days=3)


def at(day: int, hour: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def test_first_run_in_a_month_refreshes_both_until_the_grace_ends() -> None:
    assert due_exports(at(2), GRACE) == [
        DueExport("2026-11", final=False),
        DueExport("2026-12", final=False),
    ]


def test_final_export_runs_once_when_the_grace_ends() -> None:
    assert due_exports(at(4, 1), GRACE, last_run=at(3, 23)) == [
        DueExport("2026-11", final=True),
        DueExport("2026-12", final=False),
    ]
    assert due_exports(at(4, 2), GRACE, last_run=at(4, 1)) == []
    assert due_exports(at(5, 1), GRACE, last_run=at(4, 1)) == [DueExport("2026-12", final=False)]


def test_first_run_after_the_grace_still_finalises() -> None:
    assert DueExport("2026-11", final=True) in due_exports(at(20), GRACE)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_exports(datetime(2026, 12, 1), GRACE)
    with pytest.raises(ValueError, match="between 0 and 28 days"):
        due_exports(at(1), timedelta(days=40))
