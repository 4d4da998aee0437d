"""FOCUS 1.2 conformance of written exports, read back from disk with pyarrow and DuckDB."""

from __future__ import annotations

import gzip
import json
import math
import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from sandboxer.chargeback.export import export_period
from sandboxer.chargeback.focus_spec import CUSTOM_PREFIX, FOCUS_1_2_COLUMNS, FocusColumn
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.ledger.store import open_store
from tests.usage_samples import NOV, OCT, usage_row

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """Two periods, MIG and team-less rows, and a correction; returns (sink, ledger cost)."""
    root = tmp_path_factory.mktemp("focus")
    ledger = open_store(str(root / "ledger"))
    total = 0.0
    for start, count in ((OCT + timedelta(days=30), 24), (NOV, 48)):
        for i in range(count):
            hour = start + timedelta(hours=i)
            rows = [
                usage_row(hour, "u1", allocated=1.0 / 3, busy=0.1),
                usage_row(hour, "u2", owner="bob", team=None, gpu_model="A100", gpus=2,
                          allocated=2.0, busy=1.9),
                usage_row(hour, "u3", owner="carol", team="nlp", mig_profile="1g.10gb",
                          weight=1 / 7, allocated=1 / 7, busy=0.0),
            ]  # fmt: skip
            total += sum(r.cost for r in rows) if start == NOV else 0.0
            ledger.write_hour(hour, rows)
    settings = ExportSettings(region_id="eu-west-1", budget_allowances={"team-vision": 100.0})
    sink = str(root / "export")
    export_period("2026-10", ledger, sink, settings=settings, final=True)
    late_hour = OCT + timedelta(days=30, hours=5)
    late = usage_row(late_hour, "u1", allocated=0.25, revision=1)
    ledger.write_hour(late_hour, [late], revision=1)
    total += late.cost
    export_period("2026-11", ledger, sink, settings=settings)
    return root / "export", total


def _read(sink: Path, fmt: str) -> pa.Table:
    folder = sink / "data/BILLING_PERIOD=2026-11"
    if fmt == "parquet":
        return pq.read_table(folder / "part-00000.parquet")
    with gzip.open(folder / "part-00000.csv.gz") as f:
        # Times stay text, to check their ISO 8601 form as written.
        times = {c.name: pa.string() for c in FOCUS_1_2_COLUMNS if c.type == "DateTime"}
        options = pa_csv.ConvertOptions(strings_can_be_null=True, column_types=times)
        return pa_csv.read_csv(f, convert_options=options)


def _check_values(column: FocusColumn, values: pa.ChunkedArray) -> None:
    if not column.nullable:
        assert values.null_count == 0, f"{column.name} has nulls"
    present = [v for v in pc.unique(values).to_pylist() if v is not None]
    if column.allowed is not None:
        assert set(present) <= set(column.allowed), (column.name, present)
    if column.pattern is not None:
        assert all(re.fullmatch(column.pattern, str(v)) for v in present), column.name
    if column.type == "JSON":
        assert all(isinstance(json.loads(v), dict) for v in present), column.name


def test_parquet_has_every_column_with_its_type_and_allowed_values(
    export: tuple[Path, float],
) -> None:
    table = _read(export[0], "parquet")
    assert table.column_names == [c.name for c in FOCUS_1_2_COLUMNS]
    for column in FOCUS_1_2_COLUMNS:
        assert table.schema.field(column.name).type == column.arrow_type, column.name
        _check_values(column, table[column.name])
    assert table.schema.metadata is None or b"pandas" not in table.schema.metadata


def test_csv_has_every_column_with_iso_times_and_allowed_values(
    export: tuple[Path, float],
) -> None:
    table = _read(export[0], "csv")
    assert table.column_names == [c.name for c in FOCUS_1_2_COLUMNS]
    for column in FOCUS_1_2_COLUMNS:
        values = table[column.name]
        if column.type == "DateTime":
            assert all(ISO_UTC.match(v) for v in values.to_pylist()), column.name
        elif column.type == "Decimal" and values.null_count < len(values):
            assert pa.types.is_floating(values.type) or pa.types.is_integer(values.type)
        if column.type != "DateTime":
            _check_values(column, values)


def test_mandatory_columns_and_x_prefix_rule(export: tuple[Path, float]) -> None:
    for fmt in ("parquet", "csv"):
        names = _read(export[0], fmt).column_names
        mandatory = {c.name for c in FOCUS_1_2_COLUMNS if c.requirement == "Mandatory"}
        assert mandatory <= set(names)
        spec = {c.name: c for c in FOCUS_1_2_COLUMNS}
        for name in names:
            custom = spec[name].requirement == "Custom"
            assert name.startswith(CUSTOM_PREFIX) == custom, name


def test_billed_cost_sums_to_the_ledger_cost(export: tuple[Path, float]) -> None:
    sink, ledger_cost = export
    for fmt in ("parquet", "csv"):
        table = _read(sink, fmt)
        billed = pc.sum(table["BilledCost"]).as_py()
        assert math.isclose(billed, ledger_cost, rel_tol=1e-9), (fmt, billed, ledger_cost)
        corrections = pc.equal(table["ChargeClass"], "Correction")
        assert pc.sum(corrections.cast(pa.int64())).as_py() == 1


def test_duckdb_reads_the_tree_as_a_hive_partitioned_dataset(export: tuple[Path, float]) -> None:
    sink = export[0]
    con = duckdb.connect()
    rows = con.execute(
        "SELECT BILLING_PERIOD, count(*), round(sum(BilledCost), 6), "
        "count(*) FILTER (WHERE ChargeClass = 'Correction') "
        "FROM read_parquet($glob, hive_partitioning = true) GROUP BY ALL ORDER BY 1",
        {"glob": f"{sink}/data/*/*.parquet"},
    ).fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [("2026-10", 72, 0), ("2026-11", 145, 1)]
    csv_total = con.execute(
        "SELECT sum(BilledCost) FROM read_csv($glob, hive_partitioning = true) "
        "WHERE BILLING_PERIOD = '2026-11'",
        {"glob": f"{sink}/data/*/*.csv.gz"},
    ).fetchone()
    assert csv_total is not None
    assert math.isclose(csv_total[0], export[1], rel_tol=1e-9)


def test_manifest_describes_the_files_and_columns(export: tuple[Path, float]) -> None:
    sink = export[0]
    manifest = json.loads((sink / "metadata/BILLING_PERIOD=2026-11/manifest.json").read_text())
    assert manifest["focusVersion"] == "1.2"
    assert [c["name"] for c in manifest["columns"]] == [c.name for c in FOCUS_1_2_COLUMNS]
    for entry in manifest["files"]:
        assert entry["rows"] == 145
        assert (sink / entry["key"]).stat().st_size == entry["bytes"]
    assert manifest["totals"]["correctionRows"] == 1
    summaries = [entry["key"] for entry in manifest["summaryFiles"]]
    assert summaries == [
        "summary/BILLING_PERIOD=2026-11/summary.csv",
        "summary/BILLING_PERIOD=2026-11/summary.png",
    ]
    for entry in manifest["summaryFiles"]:
        assert (sink / entry["key"]).stat().st_size == entry["bytes"]
    summary = (sink / "summary/BILLING_PERIOD=2026-11/summary.csv").read_text()
    assert "team,vision,USD,team-vision," in summary
    vision = next(line for line in summary.splitlines() if line.startswith("team,vision,"))
    assert vision.endswith(",100.000,0.1625")  # (48/3 + 0.25) GPU-hours of a 100 allowance


def test_a_crawler_reading_every_file_under_data_gets_exactly_the_focus_rows(
    export: tuple[Path, float],
) -> None:
    """What an Athena/Glue crawler does: every object under data/ is read as the table."""
    sink = export[0]
    files = sorted(p for p in (sink / "data").rglob("*") if p.is_file())
    by_format: dict[str, list[str]] = {"parquet": [], "csv": []}
    for path in files:
        fmt = "parquet" if path.name.endswith(".parquet") else "csv"
        assert path.name.endswith((".parquet", ".csv.gz")), f"{path} is not a FOCUS data file"
        by_format[fmt].append(str(path))
    manifests = {
        p.parent.name: json.loads(p.read_text())
        for p in (sink / "metadata").glob("*/manifest.json")
    }
    expected = sorted(
        (period, m["totals"]["rows"], round(m["totals"]["billedCost"]["USD"], 6))
        for period, m in manifests.items()
    )
    con = duckdb.connect()
    readers = {"parquet": con.read_parquet, "csv": con.read_csv}
    for fmt, paths in by_format.items():
        assert len(paths) == len(manifests), (fmt, paths)
        readers[fmt](paths, hive_partitioning=True, union_by_name=True).create_view("focus")
        got = con.execute(
            "SELECT 'BILLING_PERIOD=' || BILLING_PERIOD, count(*), round(sum(BilledCost), 6) "
            "FROM focus GROUP BY ALL ORDER BY 1"
        ).fetchall()
        assert got == expected, fmt
        columns = con.execute("DESCRIBE SELECT * EXCLUDE (BILLING_PERIOD) FROM focus").fetchall()
        assert [c[0] for c in columns] == [c.name for c in FOCUS_1_2_COLUMNS], fmt


def test_pyarrow_dataset_reads_the_parquet_partitions(export: tuple[Path, float]) -> None:
    import pyarrow.dataset as ds

    dataset = ds.dataset(
        export[0] / "data", format="parquet", partitioning="hive", exclude_invalid_files=True
    )
    november = dataset.to_table(filter=ds.field("BILLING_PERIOD") == "2026-11")
    assert november.num_rows == 145
    assert math.isclose(pc.sum(november["BilledCost"]).as_py(), export[1], rel_tol=1e-9)
