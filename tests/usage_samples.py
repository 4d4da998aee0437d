"""Ledger rows for chargeback and ledger tests: a few teams, people and GPU models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sandboxer.ledger.rows import UsageRow

PRICES = {"H100": (4.0, 3.0), "A100": (2.5, 2.0)}  # list, contracted per GPU-hour


def usage_row(
    hour: datetime,
    uid: str = "uid-1",
    *,
    owner: str = "alice",
    team: str | None = "vision",
    gpu_model: str = "H100",
    gpus: int = 1,
    allocated: float = 1.0,
    busy: float = 0.5,
    revision: int = 0,
    budget: str | None = "team-vision",
    mig_profile: str | None = None,
    weight: float = 1.0,
) -> UsageRow:
    list_price, contracted = PRICES[gpu_model]
    return UsageRow(
        hour=hour,
        sandbox_uid=uid,
        sandbox=f"nb-{uid}",
        namespace=f"ns-{team or 'misc'}",
        owner=owner,
        team=team,
        cost_center="cc-42" if team else None,
        sandbox_class=f"gpu-{gpu_model.lower()}",
        gpu_model=gpu_model,
        mig_profile=mig_profile,
        gpus=gpus,
        billing_weight=weight,
        allocated_gpu_hours=allocated,
        busy_gpu_hours=busy,
        energy_kwh=allocated * 0.7,
        currency="USD",
        list_unit_price=list_price,
        contracted_unit_price=contracted,
        list_cost=allocated * list_price,
        cost=allocated * contracted,
        budget=budget,
        revision=revision,
        charge_class="Correction" if revision else None,
    )


def hours(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(count)]


NOV = datetime(2026, 11, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
