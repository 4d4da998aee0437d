"""What a replay reads: the policy file, the window, and the telemetry of that window.

Every problem is a `ReplayInputError` with one line that names the file or the period, for the
command line to print.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from pydantic import ValidationError

from sandboxer import API_VERSION
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import parse_duration
from sandboxer.chargeback.periods import parse_period
from sandboxer.ledger import telemetry
from sandboxer.ledger.accounting import hour_of
from sandboxer.ledger.store import LedgerStore
from sandboxer.ledger.telemetry import TelemetryError, TelemetryRow
from sandboxer.storage import StorageError

HOUR = timedelta(hours=1)


class ReplayInputError(ValueError):
    """Bad input to a replay; the message is one line that says which file or period."""


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    name: str  # the SandboxClass's metadata.name: the recorded sandboxes it applies to
    spec: SandboxClassSpec


def load_policy(path: str) -> PolicyFile:
    """The one SandboxClass in a YAML file."""
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except OSError as exc:
        raise ReplayInputError(f"--idle-policy {path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ReplayInputError(f"--idle-policy {path}: not YAML ({_first_line(exc)})") from exc
    classes = [d for d in docs if isinstance(d, dict) and d.get("kind") == "SandboxClass"]
    if len(docs) != 1 or len(classes) != 1:
        kinds = ", ".join(str(d.get("kind")) if isinstance(d, dict) else "?" for d in docs)
        raise ReplayInputError(
            f"--idle-policy {path}: expected one SandboxClass manifest, found {kinds or 'none'}"
        )
    doc = classes[0]
    if doc.get("apiVersion") != API_VERSION:
        raise ReplayInputError(
            f"--idle-policy {path}: apiVersion {doc.get('apiVersion')!r} is not {API_VERSION}"
        )
    name = (doc.get("metadata") or {}).get("name")
    if not name:
        raise ReplayInputError(f"--idle-policy {path}: the SandboxClass has no metadata.name")
    try:
        spec = SandboxClassSpec.model_validate(doc.get("spec") or {})
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise ReplayInputError(f"--idle-policy {path}: spec.{where}: {problem['msg']}") from exc
    return PolicyFile(path, str(name), spec)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def parse_sweep(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ReplayInputError(f"--idle-after {text!r}: give durations such as 10m,30m,1h")
    for value in values:
        try:
            if parse_duration(value) <= timedelta(0):
                raise ValueError("must be longer than zero")
        except ValueError as exc:
            raise ReplayInputError(f"--idle-after {value!r}: {exc}") from exc
    return values


@dataclass(frozen=True, slots=True)
class Window:
    label: str  # how the user named it, for messages
    since: datetime | None
    until: datetime | None


def window(period: str | None, since: str | None, until: str | None) -> Window:
    if period and (since or until):
        raise ReplayInputError("use either --period or --since/--until, not both")
    if period:
        try:
            month = parse_period(period)
        except ValueError as exc:
            raise ReplayInputError(f"--period {exc}") from exc
        return Window(f"period {period}", month.start, month.cutoff)
    start, end = _instant("--since", since), _instant("--until", until)
    if start and end and end <= start:
        raise ReplayInputError(f"--until {until} is not after --since {since}")
    label = f"{since or 'the first telemetry'} to {until or 'the last'}"
    return Window(label, start, end)


def _instant(flag: str, text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReplayInputError(f"{flag} {text!r}: not an ISO 8601 time ({exc})") from exc
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Telemetry:
    rows: list[TelemetryRow]
    since: datetime  # the replay's start: the window's, or the first telemetry's
    end: datetime  # nothing is read or counted past here: the window's end or the data's
    missing: list[tuple[datetime, datetime]]  # [from, to) hour ranges without telemetry


def read_window(store: LedgerStore, win: Window) -> Telemetry:
    files = store.list_telemetry(
        hour_of(win.since) if win.since else None, win.until
    )  # only the hours the window covers
    if not files:
        raise ReplayInputError(f"no telemetry for {win.label} in {store.url}")
    first, last = files[0].hour, files[-1].hour
    try:
        found = telemetry.read(store, first, last + HOUR)
    except (TelemetryError, StorageError, FileNotFoundError) as exc:
        raise ReplayInputError(str(exc)) from exc
    since = win.since or found.start or first  # the loop's first pass: it watched from there
    data_end = found.through or last
    end = min(win.until, data_end) if win.until else data_end
    rows = [r for r in found.rows if since <= r.at < end or r.at == end]
    present = set(found.hours)
    missing: list[tuple[datetime, datetime]] = []
    hour = hour_of(since)
    while hour < end:
        if hour not in present:
            if missing and missing[-1][1] == hour:
                missing[-1] = (missing[-1][0], hour + HOUR)
            else:
                missing.append((hour, hour + HOUR))
        hour += HOUR
    return Telemetry(rows, since, end, missing)
