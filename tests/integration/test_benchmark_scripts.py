"""The benchmark scripts still run and meet their targets at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a whole playground or benchmark run each


def _run(repo_root: Path, script: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / script), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The harness reads the last line: {"metrics": {...}, "unit_cost": ...}.
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])["metrics"]
    return result


def test_accounting_benchmark_small(repo_root: Path) -> None:
    result = _run(
        repo_root, "bench_accounting.py", "--sandboxes", "64", "--days", "4",
        "--agent-restarts", "2", "--operator-restarts", "3", "--crash-fraction", "0",
    )  # fmt: skip
    # Without agent crashes nothing is unpublished, so the ledger must match the truth.
    assert result["error_vs_published_pct"] == 0.0
    assert result["error_vs_truth_pct"] == 0.0
    assert result["ledger_rows"]
    assert result["commits_on_epoch_change"]


def test_reclaim_benchmark_small(repo_root: Path) -> None:
    result = _run(repo_root, "bench_reclaim.py", "--sandboxes", "40")
    assert result["within_target"] is True
    assert result["busy_reclaimed"] == 0
    assert result["all_warned_first"] is True
