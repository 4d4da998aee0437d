"""Usage rows: one per (sandbox UID, UTC hour, revision), the unit finance is billed on.

Rows are immutable values with a canonical byte form (`encode_rows`), so that rewriting an hour
produces identical bytes. Quantities are rounded to fixed decimals before encoding to keep float
noise out of files and checksums.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from sandboxer.api.types import parse_rfc3339, rfc3339

# Decimals kept when encoding: 1e-9 GPU-hours is 3.6 microseconds of one GPU.
QUANTITY_DECIMALS = 9
MONEY_DECIMALS = 9

ChargeClass = Literal["Correction"] | None


@dataclass(frozen=True, slots=True)
class UsageRow:
    hour: datetime  # start of the UTC hour this usage happened in (tz-aware, minute=0)
    sandbox_uid: str
    sandbox: str  # metadata.name
    namespace: str
    owner: str
    team: str | None
    cost_center: str | None
    sandbox_class: str
    gpu_model: str
    mig_profile: str | None
    gpus: int  # distinct GPUs (or MIG devices) seen in the hour
    billing_weight: float
    allocated_gpu_hours: float  # weighted: raw device-hours x billing_weight
    busy_gpu_hours: float  # weighted, utilization-weighted
    energy_kwh: float
    currency: str
    list_unit_price: float  # per weighted GPU-hour, from the rate card at `hour`
    contracted_unit_price: float
    list_cost: float
    cost: float  # contracted: allocated_gpu_hours x contracted_unit_price
    sku: str | None = None
    budget: str | None = None
    revision: int = 0  # 0 = first write of the hour; >0 = late usage for an already closed hour
    charge_class: ChargeClass = None  # "Correction" for rows with revision > 0
    # Most GPU memory the sandbox's processes held on one of its GPUs, by the agent's high-water
    # mark as reported in this hour. None: no report was taken in the hour (its usage came with
    # a later one, e.g. after an outage), or a row written before the ledger recorded it.
    peak_gpu_memory_bytes: int | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.hour.isoformat(), self.sandbox_uid, self.revision)

    def to_dict(self) -> dict[str, Any]:
        # Fields are flat values: a plain copy gives what `asdict` gives, without its deep copy
        # (which was most of the cost of writing an hour).
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        out["hour"] = rfc3339(self.hour)
        for name in ("allocated_gpu_hours", "busy_gpu_hours", "energy_kwh", "billing_weight"):
            out[name] = round(out[name], QUANTITY_DECIMALS)
        for name in ("list_unit_price", "contracted_unit_price", "list_cost", "cost"):
            out[name] = round(out[name], MONEY_DECIMALS)
        if self.peak_gpu_memory_bytes is None:  # unknown: encoded as rows were before it existed
            del out["peak_gpu_memory_bytes"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageRow:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["hour"] = parse_rfc3339(values["hour"])
        return cls(**values)


_FIELD_NAMES = tuple(f.name for f in fields(UsageRow))


def encode_rows(rows: Iterable[UsageRow]) -> bytes:
    """Canonical JSON-lines bytes: rows sorted by key, keys sorted, fixed rounding."""
    ordered = sorted(rows, key=lambda r: r.key)
    lines = [
        json.dumps(r.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        for r in ordered
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def decode_rows(data: bytes) -> list[UsageRow]:
    return [UsageRow.from_dict(json.loads(line)) for line in data.decode().splitlines() if line]
