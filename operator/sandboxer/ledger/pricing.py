"""Effective-dated prices from the rate card, per billing-weighted GPU-hour.

Rate card prices are per *device*-hour of the named GPU model (and MIG profile, when given).
Lookup for an hour picks, among the entries for that model and profile, the one with the latest
`effectiveFrom` that is not after the start of the hour. A MIG slice with no price of its own
falls back to its model's full-GPU price; because ledger quantities are already weighted
(a 1g slice = 1/7 GPU-hour per hour), the unit price per weighted GPU-hour is then the full price.

Rows keep the price they were priced with: a price added later with an earlier effectiveFrom does
not touch rows already written (they are immutable; only corrections are new rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sandboxer.api.ratecard import Price, RateCardSpec

MissingPrice = Literal["error", "zero"]


class PriceNotFoundError(LookupError):
    """No rate card entry covers a GPU model / MIG profile at a given time."""


@dataclass(frozen=True, slots=True)
class UnitPrice:
    currency: str
    list_price: float  # per billing-weighted GPU-hour
    contracted_price: float
    sku: str | None
    found: bool = True  # False: the `zero` fallback was used because nothing matched


def unit_price(
    card: RateCardSpec,
    model: str,
    mig_profile: str | None,
    at: datetime,
    billing_weight: float,
    *,
    missing: MissingPrice = "error",
) -> UnitPrice:
    """Price per weighted GPU-hour of `model`/`mig_profile` in effect at `at`.

    missing="error" raises PriceNotFoundError naming what to add to the rate card;
    missing="zero" returns a zero price with `found=False` so the caller can warn.
    """
    if billing_weight <= 0:
        raise ValueError(f"billing weight must be positive, got {billing_weight}")
    at = at.astimezone(UTC)
    exact = _effective(card.prices, model, mig_profile, at)
    if exact is not None:
        # A device price spread over the device's weighted hours.
        return _unit(card.currency, exact, 1.0 / billing_weight)
    if mig_profile is not None:
        full = _effective(card.prices, model, None, at)
        if full is not None:
            return _unit(card.currency, full, 1.0)
    if missing == "zero":
        return UnitPrice(card.currency, 0.0, 0.0, None, found=False)
    what = f"{model} {mig_profile}" if mig_profile else model
    raise PriceNotFoundError(
        f"the rate card has no price for {what} effective at {at:%Y-%m-%dT%H:%MZ}; add a price "
        f"with model {model!r}"
        + (f" and migProfile {mig_profile!r}" if mig_profile else "")
        + " and an effectiveFrom at or before that time"
    )


def _effective(
    prices: list[Price], model: str, mig_profile: str | None, at: datetime
) -> Price | None:
    best: Price | None = None
    for price in prices:
        if price.model != model or price.mig_profile != mig_profile:
            continue
        start = price.effective_from.astimezone(UTC)
        if start <= at and (best is None or start >= best.effective_from.astimezone(UTC)):
            best = price
    return best


def _unit(currency: str, price: Price, factor: float) -> UnitPrice:
    contracted = price.list_price if price.contracted_price is None else price.contracted_price
    return UnitPrice(currency, price.list_price * factor, contracted * factor, price.sku)
