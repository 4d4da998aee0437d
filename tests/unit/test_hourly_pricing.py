"""Hour closing, corrections and effective-dated prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandboxer.api.ratecard import Price, RateCardSpec
from sandboxer.ledger.accounting import Counters, UsageDelta
from sandboxer.ledger.hourly import HourBook, close_boundary
from sandboxer.ledger.pricing import PriceNotFoundError, unit_price
from sandboxer.ledger.rows import encode_rows
from tests.unit.ledger_sim import ref

H10 = datetime(2026, 11, 3, 10, tzinfo=UTC)
CARD = RateCardSpec(
    currency="EUR",
    prices=[
        Price(model="H100", effective_from=datetime(2026, 1, 1, tzinfo=UTC), list_price=4.0,
              contracted_price=3.0, sku="h100-2026"),
        Price(model="H100", effective_from=H10 + timedelta(hours=1), list_price=5.0),
        Price(model="H100", mig_profile="1g.10gb", effective_from=datetime(2026, 1, 1, tzinfo=UTC),
              list_price=0.7),
    ],
)  # fmt: skip


def _delta(hour: datetime, seconds: float, uid: str = "s0", **kw: Any) -> UsageDelta:
    usage = Counters(seconds, seconds / 2, 3.6e6)
    return UsageDelta(hour, "n0", "p0", "g0", ref(uid, **kw), usage)


def test_latest_price_not_after_the_hour_applies() -> None:
    assert unit_price(CARD, "H100", None, H10, 1.0).contracted_price == 3.0
    later = unit_price(CARD, "H100", None, H10 + timedelta(hours=1), 1.0)
    assert (later.list_price, later.contracted_price, later.sku) == (5.0, 5.0, None)


def test_mig_price_is_per_slice_hour_and_full_gpu_price_is_the_fallback() -> None:
    mig = unit_price(CARD, "H100", "1g.10gb", H10, 1 / 7)
    assert mig.list_price == pytest.approx(4.9)  # 0.7 per slice-hour = 4.9 per weighted hour
    other = unit_price(CARD, "H100", "2g.20gb", H10, 2 / 7)
    assert other.list_price == 4.0


def test_missing_price_raises_a_clear_error_or_falls_back_to_zero() -> None:
    with pytest.raises(PriceNotFoundError, match="add a price with model 'A100'"):
        unit_price(CARD, "A100", None, H10, 1.0)
    with pytest.raises(PriceNotFoundError, match="no price for H100"):
        unit_price(CARD, "H100", None, datetime(2025, 1, 1, tzinfo=UTC), 1.0)
    fallback = unit_price(CARD, "A100", None, H10, 1.0, missing="zero")
    assert (fallback.found, fallback.list_price) == (False, 0.0)


def test_hour_closes_when_every_node_passed_it_or_after_grace() -> None:
    progress = {"n0": H10 + timedelta(hours=1, seconds=5), "n1": H10 + timedelta(minutes=59)}
    grace = timedelta(minutes=10)
    assert close_boundary(H10 + timedelta(minutes=61), progress, grace) == H10
    progress["n1"] = H10 + timedelta(hours=1)
    assert close_boundary(H10 + timedelta(minutes=61), progress, grace) == H10 + timedelta(hours=1)
    stuck = {"n0": H10}
    assert close_boundary(H10 + timedelta(minutes=69), stuck, grace) == H10
    assert close_boundary(H10 + timedelta(minutes=70), stuck, grace) == H10 + timedelta(hours=1)


def test_closed_hour_rows_are_priced_weighted_and_deterministic() -> None:
    book = HourBook()
    book.add([_delta(H10, 1800), _delta(H10, 1800, uid="s1", weight=0.5)])
    (closed,) = book.close(H10 + timedelta(hours=2), {}, CARD)
    assert (closed.hour, closed.revision, closed.unpriced) == (H10, 0, [])
    by_uid = {r.sandbox_uid: r for r in closed.rows}
    assert by_uid["s0"].allocated_gpu_hours == 0.5
    assert by_uid["s0"].cost == 1.5  # contracted 3.0 x 0.5
    assert by_uid["s0"].list_cost == 2.0
    assert by_uid["s0"].energy_kwh == 1.0
    assert by_uid["s1"].allocated_gpu_hours == 0.25
    assert by_uid["s1"].cost == 1.5  # 0.5 device-hours x 3.0 per device-hour
    again = HourBook()
    again.add([_delta(H10, 1800, uid="s1", weight=0.5), _delta(H10, 1800)])
    assert encode_rows(again.close(H10 + timedelta(hours=2), {}, CARD)[0].rows) == encode_rows(
        closed.rows
    )


def test_late_usage_becomes_a_correction_revision_and_old_rows_keep_their_price() -> None:
    book = HourBook()
    book.add([_delta(H10, 600)])
    first = book.close(H10 + timedelta(hours=2), {}, CARD)
    book.add([_delta(H10, 300)])
    (late,) = book.close(H10 + timedelta(hours=3), {}, CARD)
    assert (late.revision, late.rows[0].charge_class) == (1, "Correction")
    assert late.rows[0].allocated_gpu_hours == pytest.approx(300 / 3600)
    assert first[0].rows[0].charge_class is None
    # An hour closed without any rows still turns late usage into a correction.
    book.add([_delta(H10 + timedelta(hours=1), 60)])
    (empty_late,) = book.close(H10 + timedelta(hours=3), {}, CARD)
    assert (empty_late.revision, empty_late.rows[0].charge_class) == (0, "Correction")
    assert empty_late.rows[0].contracted_unit_price == 5.0  # the price of that hour


def test_missing_price_in_error_mode_leaves_the_book_untouched() -> None:
    book = HourBook()
    book.add([_delta(H10, 600), _delta(H10 + timedelta(hours=1), 600, uid="x", model="A100")])
    with pytest.raises(PriceNotFoundError):
        book.close(H10 + timedelta(hours=3), {}, CARD, missing="error")
    assert sorted(book.open) == [H10, H10 + timedelta(hours=1)]
    closed = book.close(H10 + timedelta(hours=3), {}, CARD)
    assert closed[1].unpriced == ["A100"]


def test_open_hours_give_provisional_rows_and_survive_serialization() -> None:
    book = HourBook()
    book.add([_delta(H10, 900)])
    assert [r.allocated_gpu_hours for r in book.open_rows(CARD)] == [0.25]
    assert HourBook.from_json(book.to_json()) == book
