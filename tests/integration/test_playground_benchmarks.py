"""The playground benchmarks still run at a tiny size and report what the harness reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # a whole playground or benchmark run each

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, size: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--size", str(size)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["unit_cost"] > 0
    return result


def test_provisioning_counts_the_operators_writes() -> None:
    metrics = run("bench_provisioning.py", 4)["metrics"]
    assert metrics["sandboxes"] == 4 and metrics["ready_all_s"] > 0
    assert metrics["requests_per_sandbox_over_min"] >= 1.0
    # At least the minimum (5 children + a status write each), every child created once or more.
    assert metrics["writes_per_sandbox"] >= metrics["minimum_writes_per_sandbox"] == 6
    for kind in ("statefulsets", "services", "persistentvolumeclaims", "secrets"):
        assert metrics["requests_by_verb"][f"create {kind}"] >= 4


def test_time_to_notebook_reports_percentiles() -> None:
    metrics = run("bench_time_to_notebook.py", 4)["metrics"]
    assert metrics["sandboxes"] == 4
    # Never faster than the simulated container start; p99 bounds p50.
    assert metrics["simulated_container_start_seconds"] <= metrics["ready_p50_s"]
    assert metrics["ready_p50_s"] <= metrics["ready_p99_s"] <= metrics["max_seconds"]
