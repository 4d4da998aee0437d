"""The FOCUS column table: the rules every export is checked against must themselves be right."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from sandboxer.chargeback.focus_spec import (
    CUSTOM_PREFIX,
    FOCUS_1_2_COLUMNS,
    SERVICE_CATEGORIES,
    SERVICE_SUBCATEGORIES,
    arrow_schema,
    columns_for,
)
from sandboxer.chargeback.settings import ExportSettings

# FOCUS 1.2 Mandatory columns (focus.finops.org, "Column requirement level").
FOCUS_1_2_MANDATORY = {
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId",
    "BillingAccountName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "InvoiceIssuerName",
    "ServiceName", "ServiceCategory",
}  # fmt: skip
REQUIRED_EXTENSIONS = {
    "x_Owner", "x_Team", "x_CostCenter", "x_GpuModel", "x_BusyGpuHours", "x_GpuUtilizationAvg",
    "x_EnergyKWh", "x_PeakGpuMemoryBytes",
}  # fmt: skip
# Dropped: x_IdleGpuHoursReclaimed was always 0 (a usage row exists only while GPUs are held, so
# it can never carry GPU-hours given back); FOCUS 1.2 recommends these two columns.
RECOMMENDED_ADDED = {"ServiceSubcategory", "InvoiceId"}


def test_every_mandatory_column_is_listed_as_mandatory() -> None:
    mandatory = {c.name for c in FOCUS_1_2_COLUMNS if c.requirement == "Mandatory"}
    assert mandatory == FOCUS_1_2_MANDATORY


def test_names_are_unique_and_only_custom_columns_use_the_x_prefix() -> None:
    names = [c.name for c in FOCUS_1_2_COLUMNS]
    assert len(names) == len(set(names))
    for column in FOCUS_1_2_COLUMNS:
        assert column.name.startswith(CUSTOM_PREFIX) == (column.requirement == "Custom"), column
        assert re.fullmatch(r"(x_)?[A-Z][A-Za-z]+", column.name), column.name
        assert column.description.strip(), column.name
    assert set(names) >= REQUIRED_EXTENSIONS | RECOMMENDED_ADDED
    assert "x_IdleGpuHoursReclaimed" not in names


def test_allowed_values_match_the_specification() -> None:
    by_name = {c.name: c for c in FOCUS_1_2_COLUMNS}
    assert by_name["ChargeCategory"].allowed == ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
    assert by_name["ChargeClass"].allowed == ("Correction",)
    assert by_name["ChargeClass"].nullable
    assert "AI and Machine Learning" in SERVICE_CATEGORIES
    assert by_name["ServiceCategory"].allowed == SERVICE_CATEGORIES
    assert not any(by_name[n].nullable for n in FOCUS_1_2_MANDATORY - {"ChargeClass"})
    subcategories = by_name["ServiceSubcategory"].allowed or ()
    assert "AI Platforms" in SERVICE_SUBCATEGORIES["AI and Machine Learning"]
    assert len(subcategories) == len(set(subcategories)) == 82  # each has exactly one parent
    assert set(SERVICE_SUBCATEGORIES["Other"]) == {"Other (Other)"}
    assert by_name["InvoiceId"].nullable


def test_the_subcategory_must_belong_to_the_category() -> None:
    default = ExportSettings()
    assert default.service_subcategory in SERVICE_SUBCATEGORIES[default.service_category]
    ExportSettings(service_category="Compute", service_subcategory="Virtual Machines")
    with pytest.raises(ValueError, match="not a FOCUS ServiceSubcategory of 'Compute'"):
        ExportSettings(service_category="Compute")  # AI Platforms is not a Compute subcategory


def test_arrow_types_follow_the_focus_types() -> None:
    schema = arrow_schema("1.2")
    assert schema.field("BilledCost").type == pa.float64()
    assert schema.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("Tags").type == pa.string()
    assert schema.names == [c.name for c in columns_for("1.2")]


def test_unknown_focus_versions_are_refused_with_the_supported_list() -> None:
    with pytest.raises(ValueError, match=r"not supported; use one of \['1.2'\]"):
        columns_for("1.3")
    with pytest.raises(ValueError, match="not supported"):
        ExportSettings(focus_version="1.0")
    with pytest.raises(ValueError, match="not a FOCUS ServiceCategory"):
        ExportSettings(service_category="GPUs")


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOXER_EXPORT_BILLING_ACCOUNT_ID", "acme-ml")
    monkeypatch.setenv("SANDBOXER_EXPORT_REGION_ID", "eu-west-1")
    monkeypatch.setenv("SANDBOXER_EXPORT_PROVIDER_NAME", "ML Infrastructure")
    settings = ExportSettings()
    assert (settings.billing_account_id, settings.region_id) == ("acme-ml", "eu-west-1")
    assert settings.provider_name == "ML Infrastructure"
