"""The streaming export writes the bytes the whole-period export wrote.

`_previous_export` below is the export as it was before it streamed (one ledger table, one FOCUS
table, whole-table writers and group-bys), kept here as the reference. The ledgers are written
through the ledger store, with row groups of 1,100 rows and ledger parse batches that do not line
up with them, so rows cross parse batches and row groups at odd places.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from sandboxer.chargeback import focus_table, ledger_table
from sandboxer.chargeback.export import export_period
from sandboxer.chargeback.focus_table import build_focus_table
from sandboxer.chargeback.ledger_table import iter_ledger_tables, read_ledger_table, rebatch
from sandboxer.chargeback.manifest import build_manifest
from sandboxer.chargeback.periods import parse_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.chargeback.summary import SummaryLine, summary_csv, summary_png
from sandboxer.chargeback.writers import csv_ready
from sandboxer.ledger.rows import UsageRow
from sandboxer.ledger.store import BlobLedgerStore, parse_hour_key
from sandboxer.storage.directory import DirectoryBlobStore
from tests.usage_samples import NOV, OCT, usage_row

SETTINGS = ExportSettings(
    parquet_row_group_size=1100, budget_allowances={"team-vision": 500.0, "team-nlp": 80.0}
)


def _previous_export(
    ledger: BlobLedgerStore, out: Path, period: str, formats: set[str], settings: ExportSettings
) -> dict[str, bytes]:
    """Files and manifest as the whole-period export wrote them, for the files its state lists."""
    p = parse_period(period)
    state = json.loads((out / f"metadata/BILLING_PERIOD={p.label}/export-state.json").read_text())
    own = sorted(e for k in state["ledgerFiles"] if (e := parse_hour_key(k)) is not None)
    late = sorted(e for k in state["corrections"] if (e := parse_hour_key(k)) is not None)
    table = read_ledger_table(ledger.read_hour_bytes(e) for e in [*own, *late])
    focus = build_focus_table(table, p, settings).combine_chunks()  # one chunk per column
    files: dict[str, bytes] = {}
    entries = []
    tmp = out.parent / "previous"
    tmp.mkdir(exist_ok=True)
    if "parquet" in formats:
        pq.write_table(
            focus, tmp / "p", version="2.6", compression=settings.parquet_compression,
            row_group_size=settings.parquet_row_group_size, use_dictionary=True,
            write_statistics=True, data_page_version="1.0",
        )  # fmt: skip
        files[f"data/{p.partition}/part-00000.parquet"] = (tmp / "p").read_bytes()
    if "csv" in formats:
        options = pa_csv.WriteOptions(quoting_style="needed", batch_size=65_536)
        with (
            (tmp / "c").open("wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=settings.csv_gzip_level, mtime=0
            ) as stream,
        ):
            pa_csv.write_csv(csv_ready(focus), stream, write_options=options)
        files[f"data/{p.partition}/part-00000.csv.gz"] = (tmp / "c").read_bytes()
    for key, data in files.items():
        fmt = "parquet" if key.endswith(".parquet") else "csv"
        entries.append(
            {"key": key, "format": fmt, "rows": focus.num_rows, "bytes": len(data),
             "sha256": hashlib.sha256(data).hexdigest()}
        )  # fmt: skip
    lines = _previous_summary(focus, settings.budget_allowances)
    summaries = {
        f"summary/{p.partition}/summary.csv": summary_csv(lines),
        f"summary/{p.partition}/summary.png": summary_png(lines, p.label),
    }
    files.update(summaries)
    manifest = json.loads((out / f"metadata/BILLING_PERIOD={p.label}/manifest.json").read_text())
    files[f"metadata/BILLING_PERIOD={p.label}/manifest.json"] = build_manifest(
        period=p,
        focus_version=settings.focus_version,
        closed=state["closed"],
        generated_at=datetime.fromisoformat(manifest["generatedAt"]),
        watermark=ledger.get_watermark(),
        files=entries,
        summary_files=[
            {"key": k, "bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()}
            for k, v in summaries.items()
        ],
        totals=_previous_totals(focus),
    )
    return files


def _previous_summary(focus: pa.Table, allowances: dict[str, float]) -> list[SummaryLine]:
    lines = []
    for scope, column in {"team": "SubAccountId", "person": "x_Owner"}.items():
        grouped = focus.group_by([column, "BillingCurrency", "x_Budget"]).aggregate(
            [("PricingQuantity", "sum"), ("x_BusyGpuHours", "sum"), ("BilledCost", "sum")]
        )
        for row in grouped.to_pylist():
            budget = row["x_Budget"]
            lines.append(
                SummaryLine(
                    scope=scope, name=row[column], currency=row["BillingCurrency"],
                    budget=budget, gpu_hours=row["PricingQuantity_sum"],
                    busy_gpu_hours=row["x_BusyGpuHours_sum"], cost=row["BilledCost_sum"],
                    allowance=allowances.get(budget) if budget else None,
                )
            )  # fmt: skip
    return sorted(lines, key=lambda x: (x.scope != "team", x.name, x.currency, x.budget or ""))


def _previous_totals(focus: pa.Table) -> dict[str, Any]:
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


def _hour_rows(hour: datetime, count: int, revision: int = 0) -> list[UsageRow]:
    """`count` sandboxes of a few teams (one without a team), people, GPU models and slices."""
    rows = []
    for i in range(count):
        team = (None, "vision", "nlp", "speech")[i % 4]
        rows.append(
            usage_row(
                hour, f"u{i:04d}", owner=f"user-{i % 13}", team=team,
                gpu_model=("H100", "A100")[i % 2], gpus=1 + i % 3, allocated=0.25 * (1 + i % 7),
                busy=0.05 * (1 + i % 7) * (i % 5), revision=revision,
                budget=f"team-{team}" if team else None,
                mig_profile="1g.10gb" if i % 5 == 0 else None, weight=(1.0, 0.5)[i % 2],
            )
        )  # fmt: skip
    return rows


def _sink_files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and "export-state" not in p.name
    }


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_table, "BATCH_BYTES", 150_000)  # ~330 rows, not a row group
    monkeypatch.setattr(focus_table, "_CONST_CHUNK", 1024)  # constants: 1,024 + 76 rows a group


@pytest.mark.parametrize("formats", [{"parquet", "csv"}, {"parquet"}])
def test_streamed_export_has_the_previous_bytes(tmp_path: Path, formats: set[str]) -> None:
    ledger = BlobLedgerStore(DirectoryBlobStore(tmp_path / "ledger"))
    for h in range(5):  # 5 hours x 517 rows and 40 late ones: row groups of 1,100, 1,100, 425
        ledger.write_hour(NOV + timedelta(hours=h), _hour_rows(NOV + timedelta(hours=h), 517))
    late = NOV + timedelta(hours=2)  # late usage of an open period: a revision of its own
    ledger.write_hour(late, _hour_rows(late, 40, revision=1), revision=1)
    ledger.set_watermark(NOV + timedelta(hours=5))
    out = tmp_path / "out"

    result = export_period("2026-11", ledger, str(out), formats, SETTINGS)

    assert result.rows == 5 * 517 + 40
    expected = _previous_export(ledger, out, "2026-11", formats, SETTINGS)
    assert _sink_files(out) == expected


def test_corrections_stream_into_the_previous_bytes(tmp_path: Path) -> None:
    ledger = BlobLedgerStore(DirectoryBlobStore(tmp_path / "ledger"))
    last_oct = OCT + timedelta(days=30, hours=23)
    ledger.write_hour(last_oct, _hour_rows(last_oct, 700))
    ledger.write_hour(NOV, _hour_rows(NOV, 900))
    ledger.set_watermark(NOV + timedelta(hours=1))
    sink = tmp_path / "out"
    export_period("2026-10", ledger, str(sink), settings=SETTINGS, final=True)
    ledger.write_hour(last_oct, _hour_rows(last_oct, 600, revision=1), revision=1)

    nov = export_period("2026-11", ledger, str(sink), settings=SETTINGS, clock=lambda: NOV)
    assert (nov.rows, nov.correction_rows) == (1500, 600)
    expected = _previous_export(ledger, sink, "2026-11", {"parquet", "csv"}, SETTINGS)
    streamed = {k: v for k, v in _sink_files(sink).items() if "2026-11" in k}
    assert streamed == expected


def test_an_empty_period_has_the_previous_bytes(tmp_path: Path) -> None:
    ledger = BlobLedgerStore(DirectoryBlobStore(tmp_path / "ledger"))
    out = tmp_path / "out"
    export_period("2026-09", ledger, str(out), settings=SETTINGS)
    assert _sink_files(out) == _previous_export(
        ledger, out, "2026-09", {"parquet", "csv"}, SETTINGS
    )


def test_rebatch_cuts_exact_contiguous_row_groups() -> None:
    hour = datetime(2026, 11, 3, 7, tzinfo=UTC)
    files = [
        b"".join(
            json.dumps(r.to_dict(), sort_keys=True).encode() + b"\n" for r in _hour_rows(hour, n)
        )
        for n in (5, 0, 70, 300, 2, 130, 500)
    ]
    parsed = list(iter_ledger_tables(files, batch_bytes=4000))
    assert [t.num_rows for t in parsed] == [75, 300, 132, 500]  # cut between files only
    groups = list(rebatch(parsed, 256))
    assert [g.num_rows for g in groups] == [256, 256, 256, 239]
    assert all(c.num_chunks == 1 for g in groups for c in g.columns)
    assert pa.concat_tables(groups).equals(read_ledger_table(files))
