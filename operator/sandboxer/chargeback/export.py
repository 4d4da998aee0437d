"""Export one billing period: ledger → FOCUS table → data files, summary, state, manifest (last).

Pure in its inputs: the ledger, the sink and the clock; it does not log, callers (the CLI, the
operator's schedule) report the returned `ExportResult`. With no clock, `generatedAt` is the ledger
watermark, so re-running on an unchanged ledger gives a byte-identical manifest too.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sandboxer.chargeback.focus_table import build_focus_table
from sandboxer.chargeback.ledger_table import read_ledger_table
from sandboxer.chargeback.manifest import build_manifest, manifest_key
from sandboxer.chargeback.periods import BillingPeriod, parse_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.chargeback.state import ExportState, load_states, state_key
from sandboxer.chargeback.summary import summarize, summary_csv, summary_png
from sandboxer.chargeback.writers import FORMATS, write_formats
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


def _totals(focus: pa.Table) -> dict[str, Any]:
    by_currency = focus.group_by("BillingCurrency").aggregate([("BilledCost", "sum")])
    billed = {
        r["BillingCurrency"]: round(r["BilledCost_sum"], 6)
        for r in sorted(by_currency.to_pylist(), key=lambda r: str(r["BillingCurrency"]))
    }
    corrections = pc.sum(pc.is_valid(focus["ChargeClass"]).cast(pa.int64())).as_py() or 0
    gpu_hours = pc.sum(focus["PricingQuantity"]).as_py() or 0.0
    return {
        "rows": focus.num_rows,
        "correctionRows": corrections,
        "billedCost": billed,
        "pricingQuantityGpuHours": round(gpu_hours, 6),
    }


def _upload_data_files(
    store: BlobStore, prefix: str, focus: pa.Table, formats: set[str], settings: ExportSettings
) -> list[dict[str, Any]]:
    entries = []
    with tempfile.TemporaryDirectory(prefix="sandboxer-export-") as tmp:
        for written in write_formats(focus, Path(tmp), formats, settings):
            store.put_file(prefix + written.name, Path(tmp) / written.name)
            entries.append(
                {"key": prefix + written.name, "format": written.format,
                 "rows": written.rows, "bytes": written.bytes, "sha256": written.sha256}
            )  # fmt: skip
    return entries


def _upload_summaries(
    store: BlobStore, prefix: str, focus: pa.Table, period: BillingPeriod, settings: ExportSettings
) -> list[dict[str, Any]]:
    lines = summarize(focus, settings.budget_allowances)
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
    table = read_ledger_table(_read(ledger, [*selection.own, *selection.corrections], shas))
    changed = sorted(k for k, sha in selection.frozen.items() if shas.get(k) != sha)
    if changed:
        raise ExportError(
            f"ledger files {changed[:3]} changed after they were exported in closed periods; "
            "ledger hours are immutable (late usage must be a new revision)"
        )
    focus = build_focus_table(table, p, settings)
    totals = _totals(focus)

    # data/ holds FOCUS files only, so a crawler or `read_parquet('data/**/*.parquet')` sees one
    # table; the finance summary sits beside it under the same partition name.
    data_prefix = f"data/{p.partition}/"
    summary_prefix = f"summary/{p.partition}/"
    file_entries = _upload_data_files(store, data_prefix, focus, formats, settings)
    summary_entries = _upload_summaries(store, summary_prefix, focus, p, settings)

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
        totals=totals,
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
        rows=totals["rows"],
        correction_rows=totals["correctionRows"],
        gpu_hours=totals["pricingQuantityGpuHours"],
        billed_cost=totals["billedCost"],
        files=tuple(sorted(keep)),
        manifest_key=manifest_key(p.label),
        sink_url=store.url,
        generated_at=now,
        ledger_watermark=watermark,
    )


__all__ = ["ExportError", "ExportResult", "export_period"]
