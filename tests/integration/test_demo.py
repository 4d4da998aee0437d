"""The demo's story runs end to end and checks itself; its export is a FOCUS period."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sandboxer.demo.story import run_demo

pytestmark = pytest.mark.slow  # a whole playground or benchmark run each


async def test_demo_story_completes_and_writes_the_export(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_demo(tmp_path, live=False, echo=lines.append, step_timeout=60)
    said = "\n".join(lines)
    for expected in ("warned before reclaim", "went back to the pool", "BudgetExhausted",
                     "was refused", "topped up", "Ready again", "finance export"):  # fmt: skip
        assert expected in said, said
    assert "demo-bob" in result.refusal
    assert "bob has" in result.refusal
    export = tmp_path / "export"
    manifests = list(export.glob("metadata/BILLING_PERIOD=*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    parquet = next(export.glob("data/BILLING_PERIOD=*/part-00000.parquet"))
    table = pq.read_table(parquet)
    assert table.num_rows == result.export["rows"] > 0
    owners = set(table.column("x_Owner").to_pylist())
    assert owners == {"alice", "bob"}
    assert sum(table.column("BilledCost").to_pylist()) > 0
    assert manifest["files"]
