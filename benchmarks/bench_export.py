"""Benchmark: N ledger rows → FOCUS Parquet + gzip CSV, against a bare pyarrow write of the table.

    .venv/bin/python benchmarks/bench_export.py --size 1000000
    .venv/bin/python benchmarks/bench_export.py --size 10000000 --ledger /tmp/l10m --exports-only

Prints the harness's result line (bench_result.py); unit cost: export CPU per row in microseconds.
`ratio_write_path` is what the target (≤ 1.5) applies to: the export's wall time less the time
to read and parse the ledger files into one table, divided by a bare pyarrow write of the FOCUS
table (Parquet with defaults, CSV gzipped at the export's level). `ratio_end_to_end` does not
take the reading off. `parquet_only_*` repeat the comparison for a Parquet-only export (which
still renders the summary chart), run warm, after the full export in the same process.

Each export and the bare write run in fresh child processes, so that each peak RSS and Arrow
pool peak is that process's own: `export_peak_rss_mb` for the full export (both formats),
`parquet_only_peak_rss_mb` for a Parquet-only export alone. `--exports-only` leaves out the
bare write (it holds the whole period in memory, about 1.1 GB per 1,000,000 rows) and reports
the exports' own figures: that is how the 10,000,000-row memory figure is taken. `--ledger DIR`
keeps the generated ledger in DIR and reuses it when it is already there for this size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from bench_result import emit
from sandboxer.chargeback.export import export_period
from sandboxer.chargeback.focus_table import build_focus_table
from sandboxer.chargeback.ledger_table import read_ledger_table
from sandboxer.chargeback.periods import parse_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.ledger.rows import UsageRow
from sandboxer.ledger.store import open_store

START = datetime(2026, 11, 1, tzinfo=UTC)
HOURS = 720


def _write_hours(ledger_dir: Path, rows: int, hours: range) -> None:
    """Write `hours` of the benchmark month through the ledger's own writer (`write_hour`)."""
    store = open_store(str(ledger_dir))
    per_hour = -(-rows // HOURS)  # ceil: every row lands in one of the month's hours
    for h in hours:
        hour = START + timedelta(hours=h)
        count = min(per_hour, rows - h * per_hour)
        batch = []
        for i in range(count):
            team = f"team-{i % 23}"
            alloc = 1.0 + (i % 4)
            batch.append(
                UsageRow(
                    hour=hour, sandbox_uid=f"uid-{i:07d}", sandbox=f"nb-{i}",
                    namespace=f"ns-{i % 23}", owner=f"user-{i % 997}@example.com", team=team,
                    cost_center=f"cc-{i % 7}", sandbox_class="gpu-h100", gpu_model="H100",
                    mig_profile=None, gpus=int(alloc), billing_weight=1.0,
                    allocated_gpu_hours=alloc, busy_gpu_hours=alloc * (i % 10) / 10,
                    energy_kwh=alloc * 0.55, currency="USD", list_unit_price=4.0,
                    contracted_unit_price=3.1, list_cost=alloc * 4.0, cost=alloc * 3.1,
                    budget=f"budget-{team}",
                )
            )  # fmt: skip
        store.write_hour(hour, batch)


def generate(ledger_dir: Path, rows: int) -> None:
    """The month's ledger, hours split over one process per core (generation is not measured)."""
    per_hour = -(-rows // HOURS)
    hours = -(-rows // per_hour)
    workers = max(1, min(os.cpu_count() or 1, hours))
    with ProcessPoolExecutor(workers) as pool:
        futures = [
            pool.submit(_write_hours, ledger_dir, rows, range(w, hours, workers))
            for w in range(workers)
        ]
        for future in futures:
            future.result()
    open_store(str(ledger_dir)).set_watermark(START + timedelta(hours=HOURS))


def _peaks() -> dict[str, float]:
    return {
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "arrow_pool_peak_mb": round(pa.default_memory_pool().max_memory() / 2**20, 1),
    }


def child_export(ledger_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The full export, fresh, then a Parquet-only export in the same (now warm) process."""
    ledger = open_store(str(ledger_dir))
    settings = ExportSettings(summary_chart=True)
    period = parse_period("2026-11")

    t0, cpu0 = time.perf_counter(), time.process_time()
    result = export_period(period, ledger, str(out_dir / "export"), settings=settings)
    export_s = time.perf_counter() - t0
    export_cpu_s = time.process_time() - cpu0  # every thread of this process, pyarrow's too
    peaks = _peaks()

    t0, cpu0 = time.perf_counter(), time.process_time()
    export_period(period, ledger, str(out_dir / "parquet-only"), {"parquet"}, settings)
    parquet_only_s = time.perf_counter() - t0
    parquet_only_cpu_s = time.process_time() - cpu0
    data = out_dir / "export/data/BILLING_PERIOD=2026-11"
    return {
        "rows": result.rows,
        "export_s": round(export_s, 3),
        "export_cpu_s": round(export_cpu_s, 3),
        "export_cpu_us_per_row": round(export_cpu_s / max(result.rows, 1) * 1e6, 3),
        "export_peak_rss_mb": peaks["peak_rss_mb"],
        "export_arrow_pool_peak_mb": peaks["arrow_pool_peak_mb"],
        "parquet_only_export_s": round(parquet_only_s, 3),
        "parquet_only_export_cpu_s": round(parquet_only_cpu_s, 3),
        "parquet_bytes": (data / "part-00000.parquet").stat().st_size,
        "csv_gz_bytes": (data / "part-00000.csv.gz").stat().st_size,
    }


def child_parquet_only(ledger_dir: Path, out_dir: Path) -> dict[str, Any]:
    """A Parquet-only export alone in a fresh process: its peak memory."""
    ledger = open_store(str(ledger_dir))
    t0 = time.perf_counter()
    export_period("2026-11", ledger, str(out_dir / "alone"), {"parquet"}, ExportSettings())
    peaks = _peaks()
    return {
        "parquet_only_cold_export_s": round(time.perf_counter() - t0, 3),
        "parquet_only_peak_rss_mb": peaks["peak_rss_mb"],
        "parquet_only_arrow_pool_peak_mb": peaks["arrow_pool_peak_mb"],
    }


def child_bare(ledger_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Read the whole period into one table, build FOCUS from it, and write it bare."""
    ledger = open_store(str(ledger_dir))
    settings = ExportSettings()
    period = parse_period("2026-11")
    t0, cpu0 = time.perf_counter(), time.process_time()
    ledger_table = read_ledger_table(ledger.read_hour_bytes(e) for e in ledger.list_hours())
    read_s, read_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    t0 = time.perf_counter()
    focus = build_focus_table(ledger_table, period, settings)
    build_s = time.perf_counter() - t0
    del ledger_table

    t0, cpu0 = time.perf_counter(), time.process_time()
    pq.write_table(focus, out_dir / "bare.parquet")
    bare_parquet_s, bare_parquet_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    # Same gzip level as the export: Arrow's own gzip stream defaults to 9, a slower baseline.
    with (
        (out_dir / "bare.csv.gz").open("wb") as raw,
        gzip.GzipFile(mode="wb", fileobj=raw, compresslevel=settings.csv_gzip_level) as stream,
    ):
        pa_csv.write_csv(focus, stream)
    bare_s = time.perf_counter() - t0
    return {
        "ledger_read_s": round(read_s, 3),
        "ledger_read_cpu_s": round(read_cpu_s, 3),
        "focus_build_s": round(build_s, 3),
        "bare_pyarrow_write_s": round(bare_s, 3),
        "parquet_only_bare_write_s": round(bare_parquet_s, 3),
        "parquet_only_bare_write_cpu_s": round(bare_parquet_cpu_s, 3),
    }


CHILDREN = {"export": child_export, "parquet-only": child_parquet_only, "bare": child_bare}


def _run_child(name: str, ledger_dir: Path, out_dir: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, str(ledger_dir), str(out_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def _ledger(ledger_dir: Path, rows: int) -> float | None:
    """Generate the ledger unless `ledger_dir` already holds it; returns the seconds taken."""
    marker = ledger_dir / "bench-ledger.json"  # outside hours/: the ledger store ignores it
    if marker.exists() and json.loads(marker.read_text()) == {"rows": rows}:
        return None
    if ledger_dir.exists():
        shutil.rmtree(ledger_dir)
    t0 = time.perf_counter()
    generate(ledger_dir, rows)
    marker.write_text(json.dumps({"rows": rows}))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", "--size", type=int, default=1_000_000)
    parser.add_argument("--ledger", type=Path, help="keep (and reuse) the generated ledger here")
    parser.add_argument(
        "--exports-only", action="store_true", help="no bare write: the exports' own figures"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("NAME", "LEDGER", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        name, ledger_arg, out_arg = args.child
        print(json.dumps(CHILDREN[name](Path(ledger_arg), Path(out_arg))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        ledger_dir, out_dir = args.ledger or Path(tmp) / "ledger", Path(tmp) / "out"
        out_dir.mkdir()
        generate_s = _ledger(ledger_dir, args.rows)
        report = _run_child("export", ledger_dir, out_dir)
        report.update(_run_child("parquet-only", ledger_dir, out_dir))
        if not args.exports_only:
            report.update(_run_child("bare", ledger_dir, out_dir))
            read_s, bare_s = report["ledger_read_s"], report["bare_pyarrow_write_s"]
            bare_parquet_s = report["parquet_only_bare_write_s"]
            report["ratio_end_to_end"] = round(report["export_s"] / bare_s, 3)
            report["ratio_write_path"] = round((report["export_s"] - read_s) / bare_s, 3)
            report["parquet_only_ratio_write_path"] = round(
                (report["parquet_only_export_s"] - read_s) / bare_parquet_s, 3
            )
            # The same in CPU seconds (all threads): steadier than wall time on a shared
            # machine, but blind to the export overlapping its reading with the rest.
            report["parquet_only_cpu_ratio_write_path"] = round(
                (report["parquet_only_export_cpu_s"] - report["ledger_read_cpu_s"])
                / report["parquet_only_bare_write_cpu_s"],
                3,
            )
            report["target_ratio"] = 1.5
        if generate_s is not None:
            report["ledger_generate_s"] = round(generate_s, 3)
        report["ledger_bytes"] = sum(p.stat().st_size for p in ledger_dir.rglob("*.jsonl"))
        report["pyarrow"] = pa.__version__
        emit(report, unit_cost=report["export_cpu_us_per_row"])


if __name__ == "__main__":
    main()
