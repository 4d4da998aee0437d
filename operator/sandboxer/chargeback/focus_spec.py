"""The FOCUS 1.2 columns this exporter writes, and their rules, as data.

Sources: FOCUS 1.2 specification (focus.finops.org), column requirement levels and allowed
values. Everything that checks or documents the export reads this table: the table builder orders
columns by it, the conformance tests validate against it, the manifest lists it.

Decimal columns are written as float64 (as AWS and Azure FOCUS exports do); DateTime columns as
UTC timestamps in Parquet and ISO 8601 `YYYY-MM-DDTHH:MM:SSZ` strings in CSV; JSON columns as
strings holding a JSON object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

FocusType = Literal["Decimal", "String", "DateTime", "JSON", "Integer"]
Requirement = Literal["Mandatory", "Conditional", "Recommended", "Custom"]

SUPPORTED_FOCUS_VERSIONS = ("1.2",)
CUSTOM_PREFIX = "x_"

# FOCUS 1.2 ServiceCategory -> its allowed ServiceSubcategory values (each has one parent).
SERVICE_SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "AI and Machine Learning": ("AI Platforms", "Bots", "Generative AI", "Machine Learning",
                                "Natural Language Processing", "Other (AI and Machine Learning)"),
    "Analytics": ("Analytics Platforms", "Business Intelligence", "Data Processing", "Search",
                  "Streaming Analytics", "Other (Analytics)"),
    "Business Applications": ("Productivity and Collaboration", "Other (Business Applications)"),
    "Compute": ("Containers", "End User Computing", "Quantum Compute", "Serverless Compute",
                "Virtual Machines", "Other (Compute)"),
    "Databases": ("Caching", "Data Warehouses", "Ledger Databases", "NoSQL Databases",
                  "Relational Databases", "Time Series Databases", "Other (Databases)"),
    "Developer Tools": ("Developer Platforms", "Continuous Integration and Deployment",
                        "Development Environments", "Source Code Management",
                        "Quality Assurance", "Other (Developer Tools)"),
    "Identity": ("Identity and Access Management", "Other (Identity)"),
    "Integration": ("API Management", "Messaging", "Workflow Orchestration",
                    "Other (Integration)"),
    "Internet of Things": ("IoT Analytics", "IoT Platforms", "Other (Internet of Things)"),
    "Management and Governance": ("Architecture", "Compliance", "Cost Management",
                                  "Data Governance", "Disaster Recovery", "Endpoint Management",
                                  "Observability", "Support",
                                  "Other (Management and Governance)"),
    "Media": ("Content Creation", "Gaming", "Media Streaming", "Mixed Reality", "Other (Media)"),
    "Migration": ("Data Migration", "Resource Migration", "Other (Migration)"),
    "Mobile": ("Other (Mobile)",),
    "Multicloud": ("Multicloud Integration", "Other (Multicloud)"),
    "Networking": ("Application Networking", "Content Delivery", "Network Connectivity",
                   "Network Infrastructure", "Network Routing", "Network Security",
                   "Other (Networking)"),
    "Security": ("Secret Management", "Security Posture Management",
                 "Threat Detection and Response", "Other (Security)"),
    "Storage": ("Backup Storage", "Block Storage", "File Storage", "Object Storage",
                "Storage Platforms", "Other (Storage)"),
    "Web": ("Application Platforms", "Other (Web)"),
    "Other": ("Other (Other)",),
}  # fmt: skip
SERVICE_CATEGORIES = tuple(SERVICE_SUBCATEGORIES)

ARROW_TYPES: dict[FocusType, pa.DataType] = {
    "Decimal": pa.float64(),
    "String": pa.string(),
    "DateTime": pa.timestamp("ms", tz="UTC"),
    "JSON": pa.string(),
    "Integer": pa.int64(),
}


@dataclass(frozen=True, slots=True)
class FocusColumn:
    name: str
    type: FocusType
    requirement: Requirement
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None  # for strings: the only values allowed (plus null)
    pattern: str | None = None  # regular expression every non-null value matches

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]


def _c(
    name: str,
    type_: FocusType,
    requirement: Requirement,
    description: str,
    *,
    nullable: bool = False,
    allowed: tuple[str, ...] | None = None,
    pattern: str | None = None,
) -> FocusColumn:
    return FocusColumn(name, type_, requirement, description, nullable, allowed, pattern)


M: Requirement = "Mandatory"
C: Requirement = "Conditional"
R: Requirement = "Recommended"
X: Requirement = "Custom"

FOCUS_1_2_COLUMNS: tuple[FocusColumn, ...] = (
    # Mandatory: costs
    _c("BilledCost", "Decimal", M, "Cost invoiced for the row: contracted price x GPU-hours."),
    _c("EffectiveCost", "Decimal", M, "Amortized cost; equals BilledCost (no commitments)."),
    _c("ListCost", "Decimal", M, "List unit price x PricingQuantity."),
    _c("ContractedCost", "Decimal", M, "Contracted unit price x PricingQuantity."),
    # Mandatory: account, currency, periods
    _c("BillingAccountId", "String", M, "Billing account the invoice is issued to."),
    _c("BillingAccountName", "String", M, "Display name of the billing account."),
    _c("BillingCurrency", "String", M, "ISO 4217 currency of the costs.", pattern=r"^[A-Z]{3}$"),
    _c("BillingPeriodStart", "DateTime", M, "Inclusive start of the billing month (UTC)."),
    _c("BillingPeriodEnd", "DateTime", M, "Exclusive end of the billing month (UTC)."),
    _c("ChargePeriodStart", "DateTime", M, "Inclusive start of the usage hour (UTC)."),
    _c("ChargePeriodEnd", "DateTime", M, "Exclusive end of the usage hour (UTC)."),
    # Mandatory: charge classification
    _c("ChargeCategory", "String", M, "Highest-level charge classification.",
       allowed=("Usage", "Purchase", "Tax", "Credit", "Adjustment")),
    _c("ChargeClass", "String", M,
       "Correction for late usage of a billing period that was already closed; else null.",
       nullable=True, allowed=("Correction",)),
    _c("ChargeDescription", "String", M, "Self-contained summary of the charge."),
    _c("PricingQuantity", "Decimal", M, "Billing-weighted GPU-hours priced."),
    _c("PricingUnit", "String", M, "Unit of PricingQuantity.", allowed=("GPU-Hours",)),
    # Mandatory: who provides, publishes and invoices; what service
    # Internal chargeback: the platform team makes the GPU service available, produces it and
    # bills it, so one setting fills all three (a differing issuer would mean a third party is
    # paid, and FOCUS then wants BilledCost 0).
    _c("ProviderName", "String", M, "The platform team providing the GPU service."),
    _c("PublisherName", "String", M, "The platform team that produces the service (= provider)."),
    _c("InvoiceIssuerName", "String", M, "The platform team that bills it (= provider)."),
    _c("ServiceName", "String", M, "Name of the service charged."),
    _c("ServiceCategory", "String", M, "FOCUS service category.", allowed=SERVICE_CATEGORIES),
    # Recommended
    _c("ServiceSubcategory", "String", R, "FOCUS service subcategory, one of ServiceCategory's.",
       allowed=tuple(sub for subs in SERVICE_SUBCATEGORIES.values() for sub in subs)),
    _c("InvoiceId", "String", R,
       "Always null: the export issues no invoice (finance's system raises the recharge).",
       nullable=True),
    _c("ChargeFrequency", "String", R, "How often the charge occurs.",
       allowed=("One-Time", "Recurring", "Usage-Based")),
    # Conditional
    _c("BillingAccountType", "String", C, "Kind of entity BillingAccountId is."),
    _c("ConsumedQuantity", "Decimal", C, "Billing-weighted GPU-hours consumed."),
    _c("ConsumedUnit", "String", C, "Unit of ConsumedQuantity.", allowed=("GPU-Hours",)),
    _c("ListUnitPrice", "Decimal", C, "List price per PricingUnit, from the rate card."),
    _c("ContractedUnitPrice", "Decimal", C, "Contracted price per PricingUnit."),
    _c("PricingCategory", "String", C, "Pricing model.",
       allowed=("Standard", "Dynamic", "Committed", "Other")),
    _c("RegionId", "String", C, "Region of the cluster, when configured.", nullable=True),
    _c("RegionName", "String", C, "Display name of the region, when configured.", nullable=True),
    _c("ResourceId", "String", C, "ExperimentSandbox UID."),
    _c("ResourceName", "String", C, "ExperimentSandbox name (metadata.name)."),
    _c("ResourceType", "String", C, "Kind of resource.", allowed=("ExperimentSandbox",)),
    _c("SkuId", "String", C, "Rate-card SKU, or the GPU model (and MIG profile)."),
    _c("SubAccountId", "String", C, "Team, or the namespace when no team is labelled."),
    _c("SubAccountName", "String", C, "Display name of the sub account."),
    _c("SubAccountType", "String", C, "Kind of sub account.", allowed=("Team", "Namespace")),
    _c("Tags", "JSON", C, "owner, team, cost-center, class, namespace as a JSON object."),
    # Custom (x_ prefix)
    _c("x_Owner", "String", X, "Person the sandbox belongs to (stamped at admission)."),
    _c("x_Team", "String", X, "Team label of the namespace (or budget override).", nullable=True),
    _c("x_CostCenter", "String", X, "Cost centre label.", nullable=True),
    _c("x_Namespace", "String", X, "Namespace of the sandbox."),
    _c("x_SandboxClass", "String", X, "SandboxClass name."),
    _c("x_GpuModel", "String", X, "GPU model, e.g. H100."),
    _c("x_MigProfile", "String", X, "MIG profile, when the sandbox used MIG slices.",
       nullable=True),
    _c("x_Gpus", "Integer", X, "Distinct GPUs (or MIG devices) used in the hour."),
    _c("x_BusyGpuHours", "Decimal", X, "Utilization-weighted GPU-hours (billing-weighted)."),
    _c("x_GpuUtilizationAvg", "Decimal", X, "x_BusyGpuHours / PricingQuantity (0-1).",
       nullable=True),
    _c("x_EnergyKWh", "Decimal", X, "GPU energy in kWh measured by NVML."),
    _c("x_PeakGpuMemoryBytes", "Integer", X,
       "Most GPU memory the sandbox's processes held on one of its GPUs (or MIG slices) since it "
       "started there, as the agent reported in this hour; null when no report was taken in the "
       "hour (its usage arrived later, e.g. after an outage).", nullable=True),
    _c("x_Budget", "String", X, "ComputeBudget charged, if any.", nullable=True),
    _c("x_LedgerRevision", "Integer", X, "Ledger revision of the hour (0 = on-time)."),
)  # fmt: skip

FOCUS_COLUMNS: dict[str, tuple[FocusColumn, ...]] = {"1.2": FOCUS_1_2_COLUMNS}


def columns_for(version: str) -> tuple[FocusColumn, ...]:
    try:
        return FOCUS_COLUMNS[version]
    except KeyError:
        raise ValueError(
            f"FOCUS version {version!r} is not supported; use one of {sorted(FOCUS_COLUMNS)}"
        ) from None


def arrow_schema(version: str) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in columns_for(version)]
    )
