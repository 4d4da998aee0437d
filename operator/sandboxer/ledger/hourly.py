"""Open-hour accumulators: usage deltas in, priced `UsageRow`s out once an hour closes.

An hour [h, h+1h) closes when every node's newest report is at or past h+1h (nothing more can
arrive for it from a live agent), or when `now` is `grace` past h+1h (a dead node must not hold
the ledger back). Usage that arrives for an hour after it closed is written as a new revision of
that hour with `chargeClass = Correction`; rows already written never change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sandboxer.api.ratecard import RateCardSpec
from sandboxer.ledger.accounting import (
    HOUR,
    Counters,
    SandboxRef,
    UsageDelta,
    hour_of,
    iso_utc,
    parse_utc,
)
from sandboxer.ledger.pricing import MissingPrice, UnitPrice, unit_price
from sandboxer.ledger.rows import UsageRow

DEFAULT_GRACE = timedelta(minutes=10)
# Revisions of closed hours are remembered this long; reports older than the accounting
# retention are refused, so no late usage can target an hour older than this.
REVISIONS_KEPT = timedelta(days=45)
SECONDS_PER_HOUR = 3600.0
_REF_FIELDS = tuple(f.name for f in fields(SandboxRef))
JOULES_PER_KWH = 3.6e6


@dataclass(slots=True)
class Bucket:
    ref: SandboxRef
    allocated_seconds: float = 0.0
    busy_seconds: float = 0.0
    energy_joules: float = 0.0
    gpus: set[str] = field(default_factory=set)
    # Highest on any one GPU, a high-water mark (never summed); None while no report taken in
    # this hour has carried one (the hour's usage all arrived with a later report).
    peak_memory_bytes: int | None = None

    def add(self, gpu_uuid: str, usage: Counters, peak_memory_bytes: int | None = None) -> None:
        self.allocated_seconds += usage.allocated_seconds
        self.busy_seconds += usage.busy_seconds
        self.energy_joules += usage.energy_joules
        self.gpus.add(gpu_uuid)
        if peak_memory_bytes is not None:
            self.peak_memory_bytes = max(self.peak_memory_bytes or 0, peak_memory_bytes)


@dataclass(frozen=True, slots=True)
class ClosedHour:
    """Rows to write for one hour: `store.write_hour(hour, rows, revision)`."""

    hour: datetime
    revision: int
    rows: list[UsageRow]
    unpriced: list[str]  # "model[/profile]" that had no rate card entry (charged at zero)


@dataclass(slots=True)
class HourBook:
    open: dict[datetime, dict[str, Bucket]] = field(default_factory=dict)
    revisions: dict[datetime, int] = field(default_factory=dict)  # last revision written per hour
    closed_through: datetime | None = None  # every hour ending at or before this is closed
    unattributed_seconds: float = 0.0  # GPU-seconds of pods that are not known sandboxes
    # Encoded SandboxRefs by UID: refs rarely change, and encoding them is most of a checkpoint.
    _ref_text: dict[str, tuple[SandboxRef, str]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _open_cache: dict[tuple[datetime, str], tuple[Any, UsageRow]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def add(self, deltas: Iterable[UsageDelta]) -> None:
        for delta in deltas:
            if delta.sandbox is None:
                self.unattributed_seconds += delta.usage.allocated_seconds
                continue
            hour_buckets = self.open.setdefault(delta.hour, {})
            bucket = hour_buckets.get(delta.sandbox.uid)
            if bucket is None:
                bucket = hour_buckets[delta.sandbox.uid] = Bucket(delta.sandbox)
            bucket.add(delta.gpu_uuid, delta.usage, delta.peak_memory_bytes)

    def close(
        self,
        now: datetime,
        node_progress: Mapping[str, datetime],
        card: RateCardSpec,
        *,
        grace: timedelta = DEFAULT_GRACE,
        missing: MissingPrice = "zero",
    ) -> list[ClosedHour]:
        """Take out every closable hour as priced rows, oldest first."""
        before = self.closed_through
        boundary = close_boundary(now, node_progress, grace)
        through = boundary if before is None else max(before, boundary)
        out: list[ClosedHour] = []
        for hour in sorted(h for h in self.open if h + HOUR <= through):
            # Late: the hour was closed by an earlier pass (with or without rows then).
            late = hour in self.revisions or (before is not None and hour + HOUR <= before)
            revision = self.revisions.get(hour, -1) + 1
            rows, unpriced = _price(self.open[hour], hour, card, revision, late, missing)
            out.append(ClosedHour(hour, revision, rows, unpriced))
        # Mutate only after every hour priced, so a missing price leaves the book intact.
        for closed in out:
            del self.open[closed.hour]
            self.revisions[closed.hour] = closed.revision
        self.closed_through = through
        self._forget_old_revisions()
        return out

    def open_rows(self, card: RateCardSpec) -> list[UsageRow]:
        """Provisional rows for hours still open (budget status counts them; never written).

        Asked every loop pass while only the buckets of nodes that reported changed: a row is
        priced again only when its bucket or the rate card did.
        """
        rows: list[UsageRow] = []
        cache = self._open_cache
        self._open_cache = {}
        for hour, buckets in sorted(self.open.items()):
            stale: dict[str, Bucket] = {}
            for uid, b in buckets.items():
                state = (id(card), b.ref, b.allocated_seconds, b.busy_seconds, b.energy_joules,
                         len(b.gpus), b.peak_memory_bytes)  # fmt: skip
                hit = cache.get((hour, uid))
                if hit is not None and hit[0] == state:
                    self._open_cache[(hour, uid)] = hit
                    rows.append(hit[1])
                else:
                    stale[uid] = b
            for row in _price(stale, hour, card, 0, False, "zero")[0]:
                b = buckets[row.sandbox_uid]
                state = (id(card), b.ref, b.allocated_seconds, b.busy_seconds, b.energy_joules,
                         len(b.gpus), b.peak_memory_bytes)  # fmt: skip
                self._open_cache[(hour, row.sandbox_uid)] = (state, row)
                rows.append(row)
        return rows

    def _forget_old_revisions(self) -> None:
        if self.closed_through is None:
            return
        horizon = self.closed_through - REVISIONS_KEPT
        for hour in [h for h in self.revisions if h < horizon]:
            del self.revisions[hour]

    def to_json(self) -> dict[str, Any]:
        refs: dict[str, str] = {}
        open_rows = []
        for hour, buckets in sorted(self.open.items()):
            stamp = iso_utc(hour)
            for uid, b in sorted(buckets.items()):
                if uid not in refs:
                    refs[uid] = self._encoded_ref(uid, b.ref)
                open_rows.append(
                    [stamp, uid, b.allocated_seconds, b.busy_seconds, b.energy_joules,
                     sorted(b.gpus), b.peak_memory_bytes]
                )  # fmt: skip
        return {
            "refs": dict(sorted(refs.items())),
            "open": open_rows,
            "revisions": [[iso_utc(h), r] for h, r in sorted(self.revisions.items())],
            "closedThrough": iso_utc(self.closed_through) if self.closed_through else None,
            "unattributedSeconds": self.unattributed_seconds,
        }  # fmt: skip

    def _encoded_ref(self, uid: str, ref: SandboxRef) -> str:
        cached = self._ref_text.get(uid)
        if cached is None or cached[0] != ref:
            values = [getattr(ref, name) for name in _REF_FIELDS]
            cached = self._ref_text[uid] = (ref, json.dumps(values, separators=(",", ":")))
        return cached[1]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HourBook:
        book = cls()
        refs = {uid: SandboxRef(*json.loads(text)) for uid, text in doc["refs"].items()}
        for hour, uid, alloc, busy, energy, gpus, *peak in doc["open"]:
            # Checkpoints written before peak memory was kept have no 7th field.
            bucket = Bucket(refs[uid], alloc, busy, energy, set(gpus), *peak)
            book.open.setdefault(parse_utc(hour), {})[uid] = bucket
        book.revisions = {parse_utc(h): r for h, r in doc["revisions"]}
        closed = doc["closedThrough"]
        book.closed_through = parse_utc(closed) if closed else None
        book.unattributed_seconds = doc["unattributedSeconds"]
        return book


def close_boundary(
    now: datetime, node_progress: Mapping[str, datetime], grace: timedelta
) -> datetime:
    """Hours ending at or before the returned instant are closed (a whole-hour boundary)."""
    by_grace = hour_of(now - grace)
    if not node_progress:
        return by_grace
    by_nodes = hour_of(min(node_progress.values()))
    return max(by_grace, by_nodes)


def _price(
    buckets: Mapping[str, Bucket],
    hour: datetime,
    card: RateCardSpec,
    revision: int,
    late: bool,
    missing: MissingPrice,
) -> tuple[list[UsageRow], list[str]]:
    rows: list[UsageRow] = []
    unpriced: set[str] = set()
    prices: dict[tuple[str, str | None, float], UnitPrice] = {}  # one lookup per GPU kind
    for uid in sorted(buckets):
        b = buckets[uid]
        ref = b.ref
        kind = (ref.gpu_model, ref.mig_profile, ref.billing_weight)
        price = prices.get(kind) or prices.setdefault(
            kind, unit_price(card, *kind[:2], hour, ref.billing_weight, missing=missing)
        )
        if not price.found:
            unpriced.add(ref.gpu_model + (f"/{ref.mig_profile}" if ref.mig_profile else ""))
        allocated = b.allocated_seconds / SECONDS_PER_HOUR * ref.billing_weight
        rows.append(
            UsageRow(
                hour=hour,
                sandbox_uid=uid,
                sandbox=ref.name,
                namespace=ref.namespace,
                owner=ref.owner,
                team=ref.team,
                cost_center=ref.cost_center,
                sandbox_class=ref.sandbox_class,
                gpu_model=ref.gpu_model,
                mig_profile=ref.mig_profile,
                gpus=len(b.gpus),
                billing_weight=ref.billing_weight,
                allocated_gpu_hours=allocated,
                busy_gpu_hours=b.busy_seconds / SECONDS_PER_HOUR * ref.billing_weight,
                energy_kwh=b.energy_joules / JOULES_PER_KWH,
                currency=price.currency,
                list_unit_price=price.list_price,
                contracted_unit_price=price.contracted_price,
                list_cost=allocated * price.list_price,
                cost=allocated * price.contracted_price,
                sku=price.sku,
                budget=ref.budget,
                revision=revision,
                charge_class="Correction" if late else None,
                peak_gpu_memory_bytes=b.peak_memory_bytes,
            )
        )
    return rows, sorted(unpriced)
