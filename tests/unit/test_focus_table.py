"""Ledger rows → FOCUS columns, one rule at a time."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from sandboxer.chargeback.focus_table import build_focus_table
from sandboxer.chargeback.ledger_table import LEDGER_SCHEMA, read_ledger_table
from sandboxer.chargeback.periods import parse_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.ledger.rows import UsageRow, encode_rows
from tests.usage_samples import NOV, OCT, usage_row


def _focus(*rows: UsageRow, settings: ExportSettings | None = None) -> list[dict[str, object]]:
    ledger = read_ledger_table([encode_rows([r]) for r in rows])
    table = build_focus_table(ledger, parse_period("2026-11"), settings or ExportSettings())
    return table.to_pylist()


def test_ledger_schema_mirrors_usage_row() -> None:
    assert LEDGER_SCHEMA.names == [f.name for f in dataclasses.fields(UsageRow)]


def test_ledger_table_keeps_file_order_and_ignores_unknown_fields() -> None:
    first = encode_rows([usage_row(NOV, "b"), usage_row(NOV, "a")])
    extra = b'{"future_field":1,' + encode_rows([usage_row(NOV + timedelta(hours=1), "c")])[1:]
    table = read_ledger_table([first, b"", extra])
    assert table.column("sandbox_uid").to_pylist() == ["a", "b", "c"]
    assert read_ledger_table([]).num_rows == 0


def test_costs_quantities_and_periods() -> None:
    (row,) = _focus(usage_row(NOV + timedelta(hours=5), allocated=2.0, busy=0.5))
    assert (row["BilledCost"], row["EffectiveCost"], row["ContractedCost"]) == (6.0, 6.0, 6.0)
    assert (row["ListCost"], row["ListUnitPrice"], row["ContractedUnitPrice"]) == (8.0, 4.0, 3.0)
    assert (row["PricingQuantity"], row["ConsumedQuantity"]) == (2.0, 2.0)
    assert row["PricingUnit"] == row["ConsumedUnit"] == "GPU-Hours"
    assert row["ChargePeriodStart"] == datetime(2026, 11, 1, 5, tzinfo=UTC)
    assert row["ChargePeriodEnd"] == datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert row["ChargeCategory"] == "Usage"
    assert row["ChargeClass"] is None
    assert row["ServiceCategory"] == "AI and Machine Learning"
    assert row["x_GpuUtilizationAvg"] == 0.25
    assert row["x_BusyGpuHours"] == 0.5


def test_one_party_provides_publishes_and_bills_and_no_invoice_is_claimed() -> None:
    (default,) = _focus(usage_row(NOV))
    assert default["ProviderName"] == default["PublisherName"] == default["InvoiceIssuerName"]
    assert default["ProviderName"] == "Platform Engineering"
    assert (default["ServiceCategory"], default["ServiceSubcategory"]) == (
        "AI and Machine Learning",
        "AI Platforms",
    )
    assert default["InvoiceId"] is None
    settings = ExportSettings(provider_name="ML Infrastructure")
    (named,) = _focus(usage_row(NOV), settings=settings)
    names = {named["ProviderName"], named["PublisherName"], named["InvoiceIssuerName"]}
    assert names == {"ML Infrastructure"}


def test_peak_gpu_memory_is_carried_and_unknown_for_older_ledger_rows() -> None:
    measured = dataclasses.replace(usage_row(NOV, "a"), peak_gpu_memory_bytes=7 * 2**30)
    older = usage_row(NOV, "b")  # written before the ledger kept peak memory
    assert b"peak_gpu_memory_bytes" not in encode_rows([older])
    rows = _focus(measured, older)
    assert [r["x_PeakGpuMemoryBytes"] for r in rows] == [7 * 2**30, None]
    assert "x_IdleGpuHoursReclaimed" not in rows[0]


def test_rows_from_an_earlier_period_are_corrections() -> None:
    rows = _focus(usage_row(OCT + timedelta(days=30, hours=23), revision=1), usage_row(NOV))
    assert [r["ChargeClass"] for r in rows] == ["Correction", None]
    assert rows[0]["x_LedgerRevision"] == 1
    assert rows[0]["BillingPeriodStart"] == datetime(2026, 11, 1, tzinfo=UTC)


def test_sub_account_is_the_team_or_else_the_namespace() -> None:
    with_team, without = _focus(usage_row(NOV, "a"), usage_row(NOV, "b", team=None))
    assert (with_team["SubAccountId"], with_team["SubAccountType"]) == ("vision", "Team")
    assert (without["SubAccountId"], without["SubAccountType"]) == ("ns-misc", "Namespace")
    assert without["x_Team"] is None


def test_tags_are_a_json_object_without_nulls() -> None:
    with_team, without = _focus(usage_row(NOV, "a"), usage_row(NOV, "b", team=None))
    assert json.loads(str(with_team["Tags"])) == {
        "owner": "alice", "team": "vision", "cost-center": "cc-42", "class": "gpu-h100",
        "namespace": "ns-vision",
    }  # fmt: skip
    assert json.loads(str(without["Tags"])) == {
        "owner": "alice", "class": "gpu-h100", "namespace": "ns-misc"
    }  # fmt: skip


def test_sku_description_region_and_zero_usage() -> None:
    settings = ExportSettings(region_id="eu-west-1")
    (mig,) = _focus(
        usage_row(NOV, mig_profile="1g.10gb", allocated=0.0, busy=0.0), settings=settings
    )
    assert mig["SkuId"] == "H100-1g.10gb"
    assert mig["x_GpuUtilizationAvg"] is None
    assert (
        mig["ChargeDescription"]
        == "GPU time of sandbox ns-vision/nb-uid-1 (class gpu-h100, H100-1g.10gb)"
    )
    assert (mig["RegionId"], mig["RegionName"]) == ("eu-west-1", "eu-west-1")
    (plain,) = _focus(usage_row(NOV))
    assert plain["RegionId"] is None
    assert dataclasses.replace(usage_row(NOV), sku="SKU-1").sku == "SKU-1"
    (with_sku,) = _focus(dataclasses.replace(usage_row(NOV), sku="SKU-1"))
    assert with_sku["SkuId"] == "SKU-1"


def test_empty_ledger_gives_an_empty_table_with_the_full_schema() -> None:
    table = build_focus_table(read_ledger_table([]), parse_period("2026-11"), ExportSettings())
    assert table.num_rows == 0
    assert "BilledCost" in table.column_names
    assert isinstance(table, pa.Table)


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "Nov 2026", "2026-02-30"])
def test_bad_periods_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid period"):
        parse_period(bad)


def test_a_day_selects_month_to_date() -> None:
    period = parse_period("2026-11-26")
    assert period.label == "2026-11"
    assert period.cutoff == datetime(2026, 11, 27, tzinfo=UTC)
    december = parse_period("2026-12")
    assert (december.end, december.previous().label) == (
        datetime(2027, 1, 1, tzinfo=UTC),
        "2026-11",
    )
