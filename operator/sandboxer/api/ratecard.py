"""RateCard: effective-dated prices per GPU-hour (cluster-scoped).

A ledger row keeps the price it was charged at; a new price only applies from its effectiveFrom.
"""

from __future__ import annotations

from pydantic import Field

from sandboxer.api.types import Model, Timestamp


class Price(Model):
    model: str = Field(min_length=1, description="GPU model, e.g. H100.")
    mig_profile: str | None = Field(default=None, description="MIG profile, e.g. 1g.10gb.")
    effective_from: Timestamp = Field(description="First instant (UTC) this price applies.")
    list_price: float = Field(ge=0, description="Public price per GPU-hour.")
    contracted_price: float | None = Field(
        default=None, ge=0, description="Negotiated price per GPU-hour (default: list price)."
    )
    sku: str | None = Field(default=None, max_length=128)


class RateCardSpec(Model):
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    prices: list[Price] = Field(default_factory=list)


class RateCardStatus(Model):
    observed_generation: int | None = None
