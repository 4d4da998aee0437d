"""Export settings: who bills whom, and how files are written. Environment: SANDBOXER_EXPORT_*."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandboxer.chargeback.focus_spec import (
    SERVICE_CATEGORIES,
    SERVICE_SUBCATEGORIES,
    SUPPORTED_FOCUS_VERSIONS,
)


class ExportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOXER_EXPORT_", extra="ignore")

    focus_version: str = Field(default="1.2", description="FOCUS specification version.")
    billing_account_id: str = Field(default="sandboxer", min_length=1)
    billing_account_name: str = Field(default="Sandboxer GPU platform", min_length=1)
    billing_account_type: str = Field(default="Internal Platform", min_length=1)
    provider_name: str = Field(
        default="Platform Engineering",
        min_length=1,
        description="The internal party that provides, produces and bills the GPU service: "
        "ProviderName, PublisherName and InvoiceIssuerName. One value for all three, because "
        "in FOCUS an issuer other than the provider means a third party is paid.",
    )
    service_name: str = Field(default="GPU Sandboxes", min_length=1)
    service_category: str = Field(default="AI and Machine Learning")
    service_subcategory: str = Field(
        default="AI Platforms", description="One of the FOCUS subcategories of service_category."
    )
    region_id: str | None = Field(default=None, description="Cluster region, e.g. eu-west-1.")
    region_name: str | None = None
    close_grace: timedelta = Field(
        default=timedelta(days=3),
        description="A period is closed by the first export at or after its end + this grace; "
        "later usage for it becomes Correction rows in a later period.",
    )
    budget_allowances: dict[str, float] = Field(
        default_factory=dict,
        description="ComputeBudget name → allowance in GPU-hours, for budget use in the summary.",
    )
    parquet_compression: str = Field(default="zstd")
    parquet_row_group_size: int = Field(default=262_144, ge=1024)
    csv_gzip_level: int = Field(default=6, ge=1, le=9)
    summary_chart: bool = Field(default=True, description="Write summary.png beside summary.csv.")

    @field_validator("focus_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value not in SUPPORTED_FOCUS_VERSIONS:
            raise ValueError(
                f"FOCUS version {value!r} not supported; use {SUPPORTED_FOCUS_VERSIONS}"
            )
        return value

    @field_validator("service_category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in SERVICE_CATEGORIES:
            raise ValueError(
                f"{value!r} is not a FOCUS ServiceCategory; use one of {SERVICE_CATEGORIES}"
            )
        return value

    @model_validator(mode="after")
    def _subcategory_of_category(self) -> ExportSettings:
        allowed = SERVICE_SUBCATEGORIES[self.service_category]
        if self.service_subcategory not in allowed:
            raise ValueError(
                f"{self.service_subcategory!r} is not a FOCUS ServiceSubcategory of "
                f"{self.service_category!r}; use one of {allowed}"
            )
        return self
