"""Sandbox telemetry as the accounting loop saw it: one row per sandbox per report or state change.

What-if replay (`sandboxer replay`) needs what the idle policy read, not only what the ledger
billed: per report, each GPU's utilization, compute processes and the agent's last-active time,
plus the sandbox's state (running, pending, suspended, deleted) and why it was suspended. The
loop (`loop/telemetry.py`) collects these rows and the ledger store keeps them as Parquet, one
file per UTC hour of the passes that saw them:

    telemetry/2026-11-26/14.parquet    rows recorded by passes between 14:00 and 15:00 UTC

A row's `at` is the report's time (or the pass's, for a state change), so a file may hold a
row stamped a little before its hour. `encode` sorts rows, so the same rows give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, cast

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from sandboxer.ledger.store import LedgerStore

State = Literal["running", "pending", "suspended", "deleted"]
STATES: tuple[State, ...] = ("running", "pending", "suspended", "deleted")
HOUR = timedelta(hours=1)


class TelemetryError(ValueError):
    """A telemetry file that cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class GPUSample:
    uuid: str
    utilization_percent: float | None  # None: no reading (MIG)
    processes: int
    last_active_at: datetime | None  # the agent's: last sample above its threshold


@dataclass(frozen=True, slots=True)
class TelemetryRow:
    at: datetime
    sandbox_uid: str
    namespace: str
    name: str
    owner: str
    sandbox_class: str
    state: State
    gpus: int  # GPUs the sandbox holds while running (spec.gpus)
    billing_weight: float | None = None  # the class's, when the class was known
    suspended_reason: str | None = None
    started_at: datetime | None = None  # status.startedAt: the current run's first Ready
    idle_after: str | None = None  # the sandbox's own spec.idle.after
    idle_disabled: bool = False
    lifetime: str | None = None  # the sandbox's own spec.lifetime
    node: str | None = None
    report: str | None = None  # "epoch/sequence" of the node report read; None: a state change
    gpu: tuple[GPUSample, ...] = ()
    # On rows of a Jupyter reading: the user's last activity Jupyter reported (else None).
    jupyter_last_activity: datetime | None = None

    @property
    def key(self) -> tuple[str, datetime, str]:
        """Unique per row: a report is read once per sandbox, a state changes once per pass."""
        return (self.sandbox_uid, self.at, self.report or self.state)


_TS = pa.timestamp("us", tz="UTC")
_GPU = pa.struct(
    [
        ("uuid", pa.string()),
        ("utilization_percent", pa.float64()),
        ("processes", pa.int32()),
        ("last_active_at", _TS),
    ]
)
SCHEMA = pa.schema(
    [
        ("at", _TS),
        ("sandbox_uid", pa.string()),
        ("namespace", pa.string()),
        ("name", pa.string()),
        ("owner", pa.string()),
        ("sandbox_class", pa.string()),
        ("state", pa.string()),
        ("gpus", pa.int32()),
        ("billing_weight", pa.float64()),
        ("suspended_reason", pa.string()),
        ("started_at", _TS),
        ("idle_after", pa.string()),
        ("idle_disabled", pa.bool_()),
        ("lifetime", pa.string()),
        ("node", pa.string()),
        ("report", pa.string()),
        ("gpu", pa.list_(_GPU)),
        ("jupyter_last_activity", _TS),
    ]
)
_SCALARS = [f.name for f in SCHEMA if f.name != "gpu"]
_TIMES = ("at", "started_at", "jupyter_last_activity")


ROW_GROUP = 4096  # rows converted at a time: bounds the memory one write needs


def encode(rows: Iterable[TelemetryRow]) -> bytes:
    """Parquet bytes of `rows` in `order`, so equal rows give equal bytes."""
    ordered = sorted(rows, key=order)
    out = io.BytesIO()
    with pq.ParquetWriter(out, SCHEMA, compression="zstd") as writer:
        for first in range(0, len(ordered), ROW_GROUP):
            writer.write_table(_table(ordered[first : first + ROW_GROUP]))
        if not ordered:
            writer.write_table(SCHEMA.empty_table())
    return out.getvalue()


def _table(rows: Sequence[TelemetryRow]) -> pa.Table:
    columns: dict[str, list[object]] = {name: [] for name in SCHEMA.names}
    for row in rows:
        for name in _SCALARS:
            columns[name].append(getattr(row, name))
        columns["gpu"].append(
            [
                {
                    "uuid": g.uuid,
                    "utilization_percent": g.utilization_percent,
                    "processes": g.processes,
                    "last_active_at": g.last_active_at,
                }
                for g in row.gpu
            ]
        )
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def decode(data: bytes, name: str) -> list[TelemetryRow]:
    """Rows of one telemetry file; `name` (its URL) goes into the error when it is unreadable."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise TelemetryError(f"telemetry file {name} is not readable Parquet: {exc}") from exc
    missing = [f for f in SCHEMA.names if f not in table.column_names]
    if missing:
        raise TelemetryError(f"telemetry file {name} lacks columns {', '.join(missing)}")
    rows: list[TelemetryRow] = []
    for rec in table.select(SCHEMA.names).to_pylist():
        if rec["state"] not in STATES or rec["at"] is None or not rec["sandbox_uid"]:
            raise TelemetryError(f"telemetry file {name} has a row without time, uid or state")
        gpus = tuple(
            GPUSample(g["uuid"], g["utilization_percent"], g["processes"] or 0,
                      _utc(g["last_active_at"]))
            for g in rec["gpu"] or ()
        )  # fmt: skip
        rows.append(
            TelemetryRow(
                **{k: rec[k] for k in _SCALARS if k not in _TIMES and k != "state"},
                at=cast(datetime, _utc(rec["at"])),
                started_at=_utc(rec["started_at"]),
                jupyter_last_activity=_utc(rec["jupyter_last_activity"]),
                state=rec["state"],
                gpu=gpus,
            )
        )
    return rows


def order(row: TelemetryRow) -> tuple[datetime, str, bool, str, str]:
    """Time order; at the same time a report comes first: a pass reads the reports before it
    decides, so a state change it records comes after what it read."""
    return (row.at, row.sandbox_uid, row.report is None, row.report or "", row.state)


def _utc(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC) if at is not None else None


# Merged file metadata: the first and the last pass it holds.
COVERED_FROM = b"sandboxer.covered_from"
COVERED_UNTIL = b"sandboxer.covered_until"


def part_time(part: str) -> datetime:
    """The pass time in a part's name (`ledger.store.telemetry_key`)."""
    return datetime.strptime(part, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def covered(data: bytes, name: str) -> tuple[datetime | None, datetime | None]:
    """From and until when the loop ran, as a merged hour file records it."""
    try:
        meta = pq.read_metadata(io.BytesIO(data)).metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise TelemetryError(f"telemetry file {name} is not readable Parquet: {exc}") from exc
    start, until = meta.get(COVERED_FROM), meta.get(COVERED_UNTIL)
    return (
        datetime.fromisoformat(start.decode()) if start else None,
        datetime.fromisoformat(until.decode()) if until else None,
    )


def merge_parts(parts: Iterable[tuple[str, bytes]], start: datetime, until: datetime) -> bytes:
    """One hour's file from the parts its passes wrote, in their order (parts are named by
    time, and each is sorted), recording the first and last pass it covers. One part is in
    memory at a time: an hour of a large cluster holds millions of rows. Merging the same
    parts again gives the same bytes."""
    schema = SCHEMA.with_metadata(
        {
            COVERED_FROM: start.astimezone(UTC).isoformat().encode(),
            COVERED_UNTIL: until.astimezone(UTC).isoformat().encode(),
        }
    )
    out = io.BytesIO()
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for name, data in parts:
            try:
                table = pq.read_table(io.BytesIO(data), use_threads=False)
                table = table.select(SCHEMA.names).cast(schema)
            except (pa.ArrowException, OSError, KeyError) as exc:
                raise TelemetryError(
                    f"telemetry file {name} is not readable Parquet: {exc}"
                ) from exc
            writer.write_table(table)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Recorded:
    rows: list[TelemetryRow]  # without repeats, oldest first
    hours: list[datetime]  # hours that have a file or parts
    start: datetime | None  # the first pass the files show (None: no files)
    through: datetime | None  # the last pass the files show the loop ran


def read(store: LedgerStore, start: datetime, end: datetime) -> Recorded:
    """Telemetry of the passes in hours [start, end): an hour's merged file where it has one,
    else its parts (the open hour, or one a stopped loop left); a row is kept once."""
    by_hour: dict[datetime, list[str]] = {}
    entries = store.list_telemetry(start, end)
    for entry in entries:
        by_hour.setdefault(entry.hour, []).append(entry.part)
    seen: set[tuple[str, datetime, str]] = set()
    rows: list[TelemetryRow] = []
    first: datetime | None = None
    through: datetime | None = None
    for entry in entries:
        if entry.part and "" in by_hour[entry.hour]:
            continue  # left over from a merge a crash interrupted: the merged file has them
        name = f"{store.url}/{entry.key}"
        data = store.read_telemetry_bytes(entry)
        began, ran = (part_time(entry.part),) * 2 if entry.part else covered(data, name)
        began, ran = began or entry.hour, min(ran or entry.hour + HOUR, entry.hour + HOUR)
        first = began if first is None else min(first, began)
        through = ran if through is None else max(through, ran)
        for row in decode(data, name):
            if row.key not in seen:
                seen.add(row.key)
                rows.append(row)
    rows.sort(key=order)
    if rows and through is not None:
        through = max(through, rows[-1].at)
    return Recorded(rows, sorted(by_hour), first, through)
