"""`sandboxer export`: headline numbers on success, clear errors with exit code 2 on bad input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandboxer.cli import app
from sandboxer.ledger.store import open_store
from tests.usage_samples import NOV, usage_row


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    store = open_store(str(tmp_path / "ledger"))
    for i in range(3):
        hour = NOV + timedelta(hours=i)
        store.write_hour(hour, [usage_row(hour, "u1", allocated=2.0)])
    store.set_watermark(NOV + timedelta(hours=3))
    return tmp_path / "ledger"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["export", *args])
    return result.exit_code, result.output


def test_export_prints_headline_numbers(ledger_dir: Path, tmp_path: Path) -> None:
    code, out = _run(
        "--period", "2026-11", "--ledger", str(ledger_dir), "--sink", str(tmp_path / "out")
    )
    assert code == 0, out
    assert "rows: 3 (0 corrections)" in out
    assert "GPU-hours: 6.000   billed: 18.00 USD" in out
    assert "metadata/BILLING_PERIOD=2026-11/manifest.json" in out
    assert (tmp_path / "out/data/BILLING_PERIOD=2026-11/part-00000.parquet").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13"], "invalid period '2026-13'"),
        (["--period", "2026-11", "--format", "xml"], "choose from parquet, csv"),
        (["--period", "2026-11", "--sink", "ftp://host/x"], "unsupported storage URL"),
        (["--period", "2026-11", "--ledger", "/nonexistent/ledger"], "no such directory"),
    ],
)
def test_bad_input_is_explained(
    ledger_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    base = {"--ledger": str(ledger_dir), "--sink": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    code, out = _run(*[x for pair in base.items() for x in pair])
    assert code == 2
    assert message in out
