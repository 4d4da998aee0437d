"""The playground benchmarks still run at a tiny size and report what the harness reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, size: int, tmp_path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--size", str(size),
         "--ledger", str(tmp_path / "ledger")],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["unit_cost"] > 0
    return result


def test_provisioning_counts_the_operators_writes(tmp_path: Path) -> None:
    metrics = run("bench_provisioning.py", 4, tmp_path)["metrics"]
    assert metrics["sandboxes"] == 4
    # At least the minimum (5 children + a status write each), every child created once or more.
    assert metrics["writes_per_sandbox"] >= metrics["minimum_writes_per_sandbox"] == 6
    for kind in ("statefulsets", "services", "persistentvolumeclaims", "secrets"):
        assert metrics["requests_by_verb"][f"create {kind}"] >= 4


def test_time_to_notebook_reports_percentiles(tmp_path: Path) -> None:
    metrics = run("bench_time_to_notebook.py", 4, tmp_path)["metrics"]
    assert metrics["sandboxes"] == 4
    # Never faster than the simulated container start; p99 bounds p50.
    assert metrics["simulated_container_start_seconds"] <= metrics["p50_seconds"]
    assert metrics["p50_seconds"] <= metrics["p99_seconds"] <= metrics["max_seconds"]
