"""Export one billing period: ledger → FOCUS table → data files, summary, state, manifest (last).

Pure in its inputs: the ledger, the sink and the clock; it does not log, callers (the CLI, the
operator's schedule) report the returned `ExportResult`. With no clock, `generatedAt` is the ledger
watermark, so re-running on an unchanged ledger gives a byte-identical manifest too.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sandboxer.chargeback.focus_spec import arrow_schema
from sandboxer.chargeback.focus_table import FocusBuilder
from sandboxer.chargeback.ledger_table import iter_ledger_tables, rebatch
from sandboxer.chargeback.manifest import build_manifest, manifest_key
from sandboxer.chargeback.periods import BillingPeriod, parse_period
from sandboxer.chargeback.prefetch import prefetch
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.chargeback.state import ExportState, load_states, state_key
from sandboxer.chargeback.summary import SummaryAccumulator, SummaryLine, summary_csv, summary_png
from sandboxer.chargeback.writers import FORMATS, DataFileWriter, WrittenFile
from sandboxer.ledger.store import HourFile, LedgerStore
from sandboxer.storage import BlobStore, open_blobstore

Clock = Callable[[], datetime]
DEFAULT_FORMATS = frozenset({"parquet", "csv"})


class ExportError(RuntimeError):
    """The export cannot proceed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    period: str
    closed: bool
    rows: int
    correction_rows: int
    gpu_hours: float
    billed_cost: dict[str, float]  # by currency
    files: tuple[str, ...]  # sink keys of data and summary files
    manifest_key: str
    sink_url: str
    generated_at: datetime
    ledger_watermark: datetime | None


@dataclass(frozen=True, slots=True)
class _Selection:
    own: list[HourFile]
    corrections: list[HourFile]
    closed: bool
    frozen: dict[str, str]  # key → sha256 the ledger file must still have (closed periods)


def _select(
    period: BillingPeriod,
    entries: list[HourFile],
    states: dict[str, ExportState],
    closing: bool,
) -> _Selection:
    previous = states.get(period.label)
    by_key = {e.key: e for e in entries}
    if previous is not None and previous.closed:
        keys = [*previous.ledger_files, *previous.corrections]
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise ExportError(
                f"period {period.label} is closed but ledger files {missing[:3]} are gone; "
                "restore them from backup (closed periods are never rewritten)"
            )
        return _Selection(
            own=sorted(by_key[k] for k in previous.ledger_files),
            corrections=sorted(by_key[k] for k in previous.corrections),
            closed=True,
            frozen={**previous.ledger_files, **previous.corrections},
        )
    own = [e for e in entries if period.start <= e.hour < period.cutoff]
    claimed_elsewhere = {
        k for label, s in states.items() if label != period.label for k in s.corrections
    }
    corrections = set(previous.corrections) if previous else set()
    for label, earlier in states.items():
        if label >= period.label or not earlier.closed:
            continue
        q = parse_period(label)
        corrections.update(
            e.key
            for e in entries
            if q.start <= e.hour < q.end
            and e.key not in earlier.ledger_files
            and e.key not in claimed_elsewhere
        )
    return _Selection(
        own=own,
        corrections=sorted(by_key[k] for k in corrections if k in by_key),
        closed=closing,
        frozen=dict(previous.corrections) if previous else {},
    )


def _read(ledger: LedgerStore, files: Iterable[HourFile], shas: dict[str, str]) -> Iterator[bytes]:
    """Yield each file's bytes, recording its sha256 in `shas`."""
    for entry in files:
        data = ledger.read_hour_bytes(entry)
        shas[entry.key] = hashlib.sha256(data).hexdigest()
        yield data


class _Totals:
    """The manifest's totals, added up batch by batch."""

    def __init__(self) -> None:
        self.rows = 0
        self.corrections = 0
        self.gpu_hours = 0.0
        self.billed: dict[str, float] = {}

    def add(self, focus: pa.Table) -> None:
        self.rows += focus.num_rows
        self.corrections += pc.sum(pc.is_valid(focus["ChargeClass"]).cast(pa.int64())).as_py() or 0
        self.gpu_hours += pc.sum(focus["PricingQuantity"]).as_py() or 0.0
        by_currency = focus.group_by("BillingCurrency", use_threads=False).aggregate(
            [("BilledCost", "sum")]
        )
        for row in by_currency.to_pylist():
            currency = row["BillingCurrency"]
            self.billed[currency] = self.billed.get(currency, 0.0) + row["BilledCost_sum"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "correctionRows": self.corrections,
            "billedCost": {
                c: round(v, 6) for c, v in sorted(self.billed.items(), key=lambda i: str(i[0]))
            },
            "pricingQuantityGpuHours": round(self.gpu_hours, 6),
        }


def _upload_data_files(
    store: BlobStore, prefix: str, folder: Path, written: list[WrittenFile]
) -> list[dict[str, Any]]:
    entries = []
    for file in written:
        store.put_file(prefix + file.name, folder / file.name)
        entries.append(
            {"key": prefix + file.name, "format": file.format,
             "rows": file.rows, "bytes": file.bytes, "sha256": file.sha256}
        )  # fmt: skip
    return entries


def _upload_summaries(
    store: BlobStore,
    prefix: str,
    lines: list[SummaryLine],
    period: BillingPeriod,
    settings: ExportSettings,
) -> list[dict[str, Any]]:
    summaries = {"summary.csv": summary_csv(lines)}
    if settings.summary_chart:
        summaries["summary.png"] = summary_png(lines, period.label)
    entries = []
    for name, data in summaries.items():
        store.put_bytes(prefix + name, data)
        entries.append(
            {"key": prefix + name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    return entries


def export_period(
    period: str | BillingPeriod,
    ledger: LedgerStore,
    sink: str | BlobStore,
    formats: Iterable[str] = DEFAULT_FORMATS,
    settings: ExportSettings | None = None,
    clock: Clock | None = None,
    final: bool | None = None,
) -> ExportResult:
    """Export `period` ("YYYY-MM", or "YYYY-MM-DD" for month-to-date) from `ledger` to `sink`.

    `final=None` closes the period once `now >= period end + settings.close_grace`, where `now`
    is `clock()` or, without a clock, the ledger watermark. A closed period re-exports
    identically; later ledger files for it become Correction rows of the next export.
    """
    p = parse_period(period) if isinstance(period, str) else period
    settings = settings or ExportSettings()
    store = open_blobstore(sink) if isinstance(sink, str) else sink
    formats = set(formats)
    if not formats or formats - FORMATS.keys():
        raise ValueError(f"unknown export format(s) in {sorted(formats)}: use parquet and/or csv")
    watermark = ledger.get_watermark()
    now = clock() if clock is not None else (watermark or p.cutoff)
    if now.tzinfo is None:
        raise ValueError("the export clock must return timezone-aware (UTC) datetimes")
    if final and p.cutoff < p.end:
        raise ValueError(f"a final export needs the whole month: use --period {p.label}")
    closing = (
        final if final is not None else (p.cutoff == p.end and now >= p.end + settings.close_grace)
    )

    states = load_states(store)
    selection = _select(p, ledger.list_hours(), states, closing)
    shas: dict[str, str] = {}
    builder = FocusBuilder(p, settings)
    summary = SummaryAccumulator()
    totals = _Totals()
    # data/ holds FOCUS files only, so a crawler or `read_parquet('data/**/*.parquet')` sees one
    # table; the finance summary sits beside it under the same partition name.
    data_prefix = f"data/{p.partition}/"
    summary_prefix = f"summary/{p.partition}/"
    with tempfile.TemporaryDirectory(prefix="sandboxer-export-") as tmp:
        # One row group at a time, ledger → FOCUS → files, summary and totals: memory holds a
        # row group or two, never the period.
        files = _read(ledger, [*selection.own, *selection.corrections], shas)
        with (
            DataFileWriter(
                Path(tmp), formats, arrow_schema(settings.focus_version), settings
            ) as writer,
            # A thread reads, hashes and parses the next ledger files while this one builds
            # and writes FOCUS rows from the ones before; closing stops it on an error too.
            contextlib.closing(prefetch(iter_ledger_tables(files))) as tables,
        ):
            for rows in rebatch(tables, settings.parquet_row_group_size):
                focus = builder.build(rows)
                writer.write(focus)
                summary.add(focus)
                totals.add(focus)
                del rows, focus  # before the next row group is assembled
            written = writer.close()
        changed = sorted(k for k, sha in selection.frozen.items() if shas.get(k) != sha)
        if changed:
            raise ExportError(
                f"ledger files {changed[:3]} changed after they were exported in closed periods; "
                "ledger hours are immutable (late usage must be a new revision)"
            )
        file_entries = _upload_data_files(store, data_prefix, Path(tmp), written)
    # The allocator keeps freed row-group memory as the process's own; give it back before the
    # chart (matplotlib's import and drawing would otherwise add to it: a higher peak RSS).
    pa.default_memory_pool().release_unused()
    lines = summary.lines(settings.budget_allowances)
    summary_entries = _upload_summaries(store, summary_prefix, lines, p, settings)

    own_keys = {e.key for e in selection.own}
    state = ExportState(
        period=p.label,
        closed=selection.closed,
        ledger_files={k: v for k, v in sorted(shas.items()) if k in own_keys},
        corrections={k: v for k, v in sorted(shas.items()) if k not in own_keys},
    )
    store.put_bytes(state_key(p.label), state.to_bytes())
    manifest = build_manifest(
        period=p,
        focus_version=settings.focus_version,
        closed=selection.closed,
        generated_at=now,
        watermark=watermark,
        files=file_entries,
        summary_files=summary_entries,
        totals=totals.to_dict(),
    )
    store.put_bytes(manifest_key(p.label), manifest)  # last: the period is now complete
    keep = {e["key"] for e in (*file_entries, *summary_entries)}
    for prefix in (data_prefix, summary_prefix):
        for stale in store.list_keys(prefix):
            if stale not in keep:  # a format no longer requested, or an earlier layout's summary
                store.delete(stale)

    return ExportResult(
        period=p.label,
        closed=selection.closed,
        rows=totals.rows,
        correction_rows=totals.corrections,
        gpu_hours=round(totals.gpu_hours, 6),
        billed_cost=totals.to_dict()["billedCost"],
        files=tuple(sorted(keep)),
        manifest_key=manifest_key(p.label),
        sink_url=store.url,
        generated_at=now,
        ledger_watermark=watermark,
    )


__all__ = ["ExportError", "ExportResult", "export_period"]
