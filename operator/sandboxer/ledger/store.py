"""Where closed ledger hours live: deterministic files under a directory or an S3 prefix.

Layout (relative to the ledger URL):

    hours/2026-11-26/14.r0.jsonl   rows of hour 14:00-15:00 UTC, first write (revision 0)
    hours/2026-11-26/14.r1.jsonl   late usage for that hour, written after it closed (additive)
    watermark.json                 {"watermark": "2026-11-26T15:00:00Z"}: hours before it are closed
    telemetry/2026-11-26/14.parquet
                                   what the loop saw in that hour's passes (`ledger/telemetry.py`)
    telemetry/2026-11-26/14.part-20261126T140510000000Z.parquet
                                   rows of the open hour written by one pass; merged into the
                                   hour's file once the hour is over
    state/<name>                   small opaque blobs (the accounting loop's cursors)

Revisions are additive: the usage of an hour is the sum of all its revision files. Each file holds
`encode_rows` bytes, so rewriting an hour with the same rows yields identical bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from sandboxer.api.types import parse_rfc3339, rfc3339
from sandboxer.ledger.rows import UsageRow, decode_rows, encode_rows
from sandboxer.storage import BlobStore, open_blobstore
from sandboxer.storage.directory import DirectoryBlobStore

if TYPE_CHECKING:
    from sandboxer.storage.s3 import S3Options

DEFAULT_LEDGER_URL = "./.sandboxer/ledger"
_HOUR_KEY = re.compile(r"^hours/(\d{4}-\d{2}-\d{2})/(\d{2})\.r(\d+)\.jsonl$")
_STATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_WATERMARK_KEY = "watermark.json"
_TELEMETRY_KEY = re.compile(
    r"^telemetry/(\d{4}-\d{2}-\d{2})/(\d{2})(?:\.part-(\d{8}T\d{12}Z))?\.parquet$"
)


@dataclass(frozen=True, slots=True, order=True)
class HourFile:
    """One stored revision of one hour."""

    hour: datetime
    revision: int
    key: str


def hour_key(hour: datetime, revision: int) -> str:
    return f"hours/{hour:%Y-%m-%d}/{hour:%H}.r{revision}.jsonl"


def check_hour(hour: datetime) -> datetime:
    if hour.tzinfo is None or hour.utcoffset() is None:
        raise ValueError(f"hour {hour!r} has no timezone: pass a UTC-aware datetime")
    hour = hour.astimezone(UTC)
    if (hour.minute, hour.second, hour.microsecond) != (0, 0, 0):
        raise ValueError(f"hour {hour.isoformat()} is not the start of an hour")
    return hour


def parse_hour_key(key: str) -> HourFile | None:
    match = _HOUR_KEY.match(key)
    if not match:
        return None
    day, hh, revision = match.groups()
    hour = datetime.strptime(f"{day} {hh}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return HourFile(hour=hour, revision=int(revision), key=key)


@dataclass(frozen=True, slots=True, order=True)
class TelemetryFile:
    """The telemetry of one hour's passes, or a part written by one pass of the open hour."""

    hour: datetime
    part: str  # "" for the hour's merged file, else the writing pass's time
    key: str


def telemetry_key(hour: datetime, part: datetime | None = None) -> str:
    tail = f".part-{part.astimezone(UTC):%Y%m%dT%H%M%S%fZ}" if part is not None else ""
    return f"telemetry/{hour:%Y-%m-%d}/{hour:%H}{tail}.parquet"


def parse_telemetry_key(key: str) -> TelemetryFile | None:
    match = _TELEMETRY_KEY.match(key)
    if not match:
        return None
    day, hh, part = match.groups()
    hour = datetime.strptime(f"{day} {hh}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return TelemetryFile(hour=hour, part=part or "", key=key)


_Entry = TypeVar("_Entry", HourFile, TelemetryFile)


class LedgerStore(Protocol):
    @property
    def url(self) -> str: ...

    def write_hour(self, hour: datetime, rows: Iterable[UsageRow], revision: int = 0) -> str: ...

    def list_hours(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[HourFile]: ...

    def read_hour_bytes(self, entry: HourFile) -> bytes: ...

    def read_rows(self, start: datetime, end: datetime) -> Iterator[UsageRow]: ...

    def get_watermark(self) -> datetime | None: ...

    def set_watermark(self, watermark: datetime) -> None: ...

    def get_state(self, name: str) -> bytes | None: ...

    def put_state(self, name: str, data: bytes) -> None: ...

    def write_telemetry(self, hour: datetime, data: bytes, part: datetime | None = None) -> str: ...

    def list_telemetry(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[TelemetryFile]: ...

    def read_telemetry_bytes(self, entry: TelemetryFile) -> bytes: ...

    def delete_telemetry(self, entry: TelemetryFile) -> None: ...


class BlobLedgerStore:
    """The ledger on any `BlobStore` (see `DirectoryLedgerStore` and `S3LedgerStore`)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    @property
    def url(self) -> str:
        return self.blobs.url

    def write_hour(self, hour: datetime, rows: Iterable[UsageRow], revision: int = 0) -> str:
        """Write one hour's rows atomically; returns the key. Same rows → same bytes."""
        hour = check_hour(hour)
        if revision < 0:
            raise ValueError(f"revision must be >= 0, got {revision}")
        rows = list(rows)
        for row in rows:
            if row.hour != hour or row.revision != revision:
                raise ValueError(
                    f"row for sandbox {row.sandbox_uid} is for hour {row.hour.isoformat()} "
                    f"revision {row.revision}, not hour {hour.isoformat()} revision {revision}"
                )
        key = hour_key(hour, revision)
        self.blobs.put_bytes(key, encode_rows(rows))
        return key

    def list_hours(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[HourFile]:
        """Stored hour files with start <= hour < end, ordered by (hour, revision)."""
        return _listed(self.blobs, "hours/", parse_hour_key, start, end)

    def read_hour_bytes(self, entry: HourFile) -> bytes:
        return self._read("ledger file", entry.key)

    def _read(self, what: str, key: str) -> bytes:
        data = self.blobs.get_bytes(key)
        if data is None:
            raise FileNotFoundError(f"{what} {self.url}/{key} disappeared while reading")
        return data

    def read_rows(self, start: datetime, end: datetime) -> Iterator[UsageRow]:
        """Every row of every revision with start <= hour < end."""
        for entry in self.list_hours(start, end):
            yield from decode_rows(self.read_hour_bytes(entry))

    def get_watermark(self) -> datetime | None:
        data = self.blobs.get_bytes(_WATERMARK_KEY)
        if data is None:
            return None
        return parse_rfc3339(json.loads(data)["watermark"])

    def set_watermark(self, watermark: datetime) -> None:
        """Record that every hour before `watermark` is closed. It never moves backwards."""
        watermark = check_hour(watermark)
        current = self.get_watermark()
        if current is not None and watermark < current:
            raise ValueError(
                f"watermark cannot move back from {current.isoformat()} to {watermark.isoformat()}"
            )
        body = {"watermark": rfc3339(watermark)}
        self.blobs.put_bytes(_WATERMARK_KEY, json.dumps(body, sort_keys=True).encode() + b"\n")

    def get_state(self, name: str) -> bytes | None:
        return self.blobs.get_bytes(f"state/{_check_state_name(name)}")

    def put_state(self, name: str, data: bytes) -> None:
        self.blobs.put_bytes(f"state/{_check_state_name(name)}", data)

    def write_telemetry(self, hour: datetime, data: bytes, part: datetime | None = None) -> str:
        """Write one hour's telemetry file, or one part of it (a rewrite replaces, never adds)."""
        key = telemetry_key(check_hour(hour), part)
        self.blobs.put_bytes(key, data)
        return key

    def list_telemetry(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[TelemetryFile]:
        """Stored telemetry files and parts with start <= hour < end, oldest first."""
        return _listed(self.blobs, "telemetry/", parse_telemetry_key, start, end)

    def read_telemetry_bytes(self, entry: TelemetryFile) -> bytes:
        return self._read("telemetry file", entry.key)

    def delete_telemetry(self, entry: TelemetryFile) -> None:
        self.blobs.delete(entry.key)


def _listed(
    blobs: BlobStore,
    prefix: str,
    parse: Callable[[str], _Entry | None],
    start: datetime | None,
    end: datetime | None,
) -> list[_Entry]:
    """The entries under `prefix` whose hour is in [start, end), in their order."""
    entries = (parse(k) for k in blobs.list_keys(prefix))
    return sorted(
        e
        for e in entries
        if e is not None and (start is None or e.hour >= start) and (end is None or e.hour < end)
    )


def _check_state_name(name: str) -> str:
    if not _STATE_NAME.match(name):
        raise ValueError(f"invalid ledger state name {name!r}: use letters, digits, '.', '_', '-'")
    return name


class DirectoryLedgerStore(BlobLedgerStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(DirectoryBlobStore(Path(path)))


class S3LedgerStore(BlobLedgerStore):
    def __init__(self, url: str, options: S3Options | None = None) -> None:
        if not url.startswith("s3://"):
            raise ValueError(f"not an S3 URL: {url!r}; expected s3://bucket/prefix")
        super().__init__(open_blobstore(url, s3=options))


def open_store(url: str | None = None, *, s3: S3Options | None = None) -> BlobLedgerStore:
    """The ledger at `url`: a directory, file:///path or s3://bucket/prefix."""
    return BlobLedgerStore(open_blobstore(url or DEFAULT_LEDGER_URL, s3=s3))
