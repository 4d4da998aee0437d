"""export_period on directories: layout, byte-identical reruns, closing, corrections, errors."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandboxer.chargeback.export import ExportError, export_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.ledger.store import BlobLedgerStore, open_store
from tests.usage_samples import NOV, OCT, usage_row

NOV_P = "data/BILLING_PERIOD=2026-11"
OCT_P = "data/BILLING_PERIOD=2026-10"
NOV_S = "summary/BILLING_PERIOD=2026-11"


def _fill(store: BlobLedgerStore, start: datetime, count: int) -> None:
    for i in range(count):
        hour = start + timedelta(hours=i)
        store.write_hour(
            hour,
            [
                usage_row(hour, "u1"),
                usage_row(hour, "u2", owner="bob", team="nlp", gpu_model="A100", allocated=2),
            ],
        )


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _manifest(root: Path, period: str) -> dict[str, object]:
    path = root / f"metadata/BILLING_PERIOD={period}/manifest.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def ledger(tmp_path: Path) -> BlobLedgerStore:
    store = open_store(str(tmp_path / "ledger"))
    _fill(store, NOV, 6)
    store.set_watermark(NOV + timedelta(hours=6))
    return store


def test_layout_and_headline_numbers(ledger: BlobLedgerStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = export_period("2026-11", ledger, str(out))
    assert sorted(_tree(out)) == [
        f"{NOV_P}/part-00000.csv.gz",
        f"{NOV_P}/part-00000.parquet",
        "metadata/BILLING_PERIOD=2026-11/export-state.json",
        "metadata/BILLING_PERIOD=2026-11/manifest.json",
        f"{NOV_S}/summary.csv",
        f"{NOV_S}/summary.png",
    ]
    assert (result.rows, result.correction_rows, result.closed) == (12, 0, False)
    assert result.billed_cost == {"USD": 6 * (3.0 + 2 * 2.0)}
    assert result.gpu_hours == 18.0
    manifest = _manifest(out, "2026-11")
    assert manifest["generatedAt"] == manifest["ledgerWatermark"] == "2026-11-01T06:00:00Z"
    files = {f["key"]: f for f in manifest["files"]}  # type: ignore[attr-defined]
    parquet = files[f"{NOV_P}/part-00000.parquet"]
    assert parquet["rows"] == 12
    assert parquet["sha256"] == _tree(out)[f"{NOV_P}/part-00000.parquet"]
    assert [f["key"] for f in manifest["summaryFiles"]] == [  # type: ignore[attr-defined]
        f"{NOV_S}/summary.csv",
        f"{NOV_S}/summary.png",
    ]
    summary = (out / NOV_S / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("scope,name,currency,budget,gpu_hours,busy_gpu_hours,busy_share")
    assert "person,bob,USD,team-vision,12.000000,3.000000,0.2500,24.00,," in summary
    assert (out / NOV_S / "summary.png").read_bytes().startswith(b"\x89PNG")


def test_rerun_is_byte_identical(ledger: BlobLedgerStore, tmp_path: Path) -> None:
    export_period("2026-11", ledger, str(tmp_path / "a"))
    first = _tree(tmp_path / "a")
    export_period("2026-11", ledger, str(tmp_path / "a"))
    export_period("2026-11", ledger, str(tmp_path / "b"))
    assert _tree(tmp_path / "a") == first == _tree(tmp_path / "b")


def test_injected_clock_sets_generated_at(ledger: BlobLedgerStore, tmp_path: Path) -> None:
    at = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
    export_period("2026-11", ledger, str(tmp_path), clock=lambda: at)
    assert _manifest(tmp_path, "2026-11")["generatedAt"] == "2026-11-02T03:04:05Z"


def test_a_day_exports_month_to_date(ledger: BlobLedgerStore, tmp_path: Path) -> None:
    _fill(ledger, NOV + timedelta(days=2), 1)
    result = export_period("2026-11-01", ledger, str(tmp_path))
    assert result.rows == 12
    assert _manifest(tmp_path, "2026-11")["chargesThrough"] == "2026-11-02T00:00:00Z"
    with pytest.raises(ValueError, match="final export needs the whole month"):
        export_period("2026-11-01", ledger, str(tmp_path), final=True)


def test_dropped_format_files_are_removed_after_the_manifest(
    ledger: BlobLedgerStore, tmp_path: Path
) -> None:
    export_period("2026-11", ledger, str(tmp_path))
    # A summary where earlier exports put it, inside data/: a re-export leaves only FOCUS files.
    (tmp_path / NOV_P / "summary.csv").write_text("scope,name\n")
    export_period("2026-11", ledger, str(tmp_path), formats={"parquet"})
    assert not (tmp_path / NOV_P / "part-00000.csv.gz").exists()
    assert sorted(p.name for p in (tmp_path / NOV_P).iterdir()) == ["part-00000.parquet"]
    assert [f["format"] for f in _manifest(tmp_path, "2026-11")["files"]] == ["parquet"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown export format"):
        export_period("2026-11", ledger, str(tmp_path), formats={"xlsx"})


def test_late_usage_of_a_closed_period_becomes_corrections_next_period(tmp_path: Path) -> None:
    ledger = open_store(str(tmp_path / "ledger"))
    last_oct = OCT + timedelta(days=30, hours=22)
    _fill(ledger, last_oct, 2)
    _fill(ledger, NOV, 1)
    sink = str(tmp_path / "out")
    settings = ExportSettings(close_grace=timedelta(days=2))

    # Before end + grace the period stays open; at end + grace it closes.
    early = export_period("2026-10", ledger, sink, settings=settings, clock=lambda: NOV)
    assert not early.closed
    closing = NOV + timedelta(days=2)
    closed = export_period("2026-10", ledger, sink, settings=settings, clock=lambda: closing)
    assert (closed.closed, closed.rows) == (True, 4)
    october = _tree(tmp_path / "out")

    # Late usage for 30 Oct arrives as ledger revision 1 after October closed.
    late = [usage_row(last_oct, "u1", allocated=0.5, revision=1)]
    ledger.write_hour(last_oct, late, revision=1)

    again = export_period("2026-10", ledger, sink, settings=settings, clock=lambda: closing)
    assert again.rows == 4
    assert _tree(tmp_path / "out") == october  # no silent rewrite of the closed period

    nov = export_period("2026-11", ledger, sink, settings=settings, clock=lambda: closing)
    assert (nov.rows, nov.correction_rows) == (3, 1)
    assert nov.billed_cost == {"USD": 3.0 + 4.0 + 0.5 * 3.0}
    state = json.loads(
        (tmp_path / "out/metadata/BILLING_PERIOD=2026-11/export-state.json").read_text()
    )
    assert list(state["corrections"]) == ["hours/2026-10-31/22.r1.jsonl"]

    # The correction is claimed once: a December export does not repeat it.
    dec = export_period("2026-12", ledger, sink, settings=settings, clock=lambda: closing)
    assert dec.correction_rows == 0


def test_a_changed_ledger_file_of_a_closed_period_is_an_error(tmp_path: Path) -> None:
    ledger = open_store(str(tmp_path / "ledger"))
    _fill(ledger, OCT, 1)
    sink = str(tmp_path / "out")
    export_period("2026-10", ledger, sink, final=True)
    ledger.write_hour(OCT, [usage_row(OCT, "u9")])  # rewriting history: not allowed
    with pytest.raises(ExportError, match="changed after they were exported"):
        export_period("2026-10", ledger, sink)
    (tmp_path / "ledger/hours/2026-10-01/00.r0.jsonl").unlink()
    with pytest.raises(ExportError, match="are gone"):
        export_period("2026-10", ledger, sink)


def test_a_period_without_usage_still_gets_complete_files(tmp_path: Path) -> None:
    ledger = open_store(str(tmp_path / "ledger"))
    result = export_period("2026-09", ledger, str(tmp_path / "out"))
    assert (result.rows, result.billed_cost, result.closed) == (0, {}, False)
    manifest = _manifest(tmp_path / "out", "2026-09")
    assert [f["rows"] for f in manifest["files"]] == [0, 0]  # type: ignore[attr-defined]
    assert manifest["ledgerWatermark"] is None
    summary = (tmp_path / "out/summary/BILLING_PERIOD=2026-09/summary.csv").read_text()
    assert summary.count("\n") == 1  # the header only
