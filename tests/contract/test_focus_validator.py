"""The FinOps Foundation's own FOCUS validator accepts the demo's export and a generated month.

`focus-validator` 2.2.1 (FOCUS 1.2 rules) runs from `.venv-focus-validator`, which `make test`
builds. The demo's files are validated in both formats, the month's Parquet. A failed rule is
accepted only where it is one branch of an OR rule that passed (InvoiceId-C-005-C: the validator
cannot tell whether a charge has an invoice, so one of "MUST be null" / "MUST NOT be null"
always fails); any other failure fails the test with the validator's own summary.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sandboxer.demo.story import run_demo
from tests.contract.focus_month import Month, generate_month
from tests.contract.focus_validator import VENV, ValidatorRun, run_validator

# The rules issue 23 was about: who is paid, the recommended columns, and their relationships.
MUST_PASS = (
    "BilledCost-C-005-C", "CostAndUsage-D-033-O", "CostAndUsage-D-042-O", "InvoiceId-C-003-C",
    "ServiceSubcategory-C-003-M", "ServiceSubcategory-C-004-M", "ServiceName-C-008-C",
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _validator_installed() -> None:
    if not (VENV / "bin" / "focus-validator").exists():
        pytest.fail(f"{VENV} is missing: run `make test` (or `make {VENV.name}/.installed-stamp`)")


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    asyncio.run(run_demo(out, live=False, echo=lambda _: None, step_timeout=60))
    return out / "export"


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    return generate_month(tmp_path_factory.mktemp("month"))


def _data_files(export: Path, period: str) -> list[Path]:
    folder = export / f"data/BILLING_PERIOD={period}"
    return [folder / "part-00000.parquet", folder / "part-00000.csv.gz"]


def _assert_conformant(run: ValidatorRun) -> None:
    print(run.summary)
    unexplained = sorted(set(run.failed_rules) - set(run.unmet_alternatives()))
    assert not unexplained, run.report()
    assert run.failed == len(run.failed_rules)  # every counted failure was seen and judged
    assert run.passed > 100, run.summary  # rules really ran: a skipped-everything run fails
    not_passed = {rule: run.statuses.get(rule) for rule in MUST_PASS}
    assert set(not_passed.values()) == {"PASS"}, (not_passed, run.report())


@pytest.mark.parametrize("fmt", [0, 1], ids=["parquet", "csv"])
def test_the_demo_export_passes_the_focus_validator(demo_export: Path, fmt: int) -> None:
    (period,) = [p.name.partition("=")[2] for p in (demo_export / "data").iterdir()]
    _assert_conformant(run_validator(_data_files(demo_export, period)[fmt]))


def test_a_generated_month_passes_the_focus_validator(month: Month) -> None:
    # Parquet only: the CSV writer's forms are validated on the demo's export, and another
    # 14,000-row run would add half a minute to the suite.
    _assert_conformant(run_validator(_data_files(month.sink, "2026-11")[0]))


def test_the_generated_month_holds_what_it_claims(month: Month) -> None:
    table = pq.read_table(_data_files(month.sink, "2026-11")[0])
    assert table.num_rows >= 10_000
    assert month.november.correction_rows > 0  # October's late hours, after October closed
    corrections = table.filter(pc.equal(table["ChargeClass"], "Correction"))
    late_hours = pc.unique(corrections["ChargePeriodStart"]).to_pylist()
    assert late_hours and all(hour.month == 10 for hour in late_hours)
    assert set(month.november.billed_cost) == {"USD", "EUR"}  # the rate card changed currency
    assert set(pc.unique(table["x_MigProfile"]).to_pylist()) == {None, "1g.10gb", "3g.40gb"}
    # Peak memory: known wherever a report was taken in the hour, which is all but the hours of
    # n3's outages (their usage arrived with the first report after).
    peaks = table["x_PeakGpuMemoryBytes"]
    assert 0 < peaks.null_count < 0.01 * table.num_rows
    assert 0 < pc.min(peaks).as_py() <= pc.max(peaks).as_py() <= 80 * 2**30
    # Nothing lost or doubled on the way (agent and operator restarts, outages, late hours):
    # only the usage a crashed agent had not yet published is missing.
    ledger = month.october.gpu_hours + month.november.gpu_hours
    assert ledger <= month.held_gpu_hours
    assert ledger == pytest.approx(month.held_gpu_hours, rel=2e-4)
