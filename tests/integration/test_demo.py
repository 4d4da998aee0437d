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


async def test_replaying_the_demo_class_reproduces_what_happened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's own telemetry, replayed under its own class, gives what the loop did."""
    import contextlib
    import io

    import yaml

    from sandboxer.cli import main
    from sandboxer.demo.story import SETUP

    await run_demo(tmp_path, live=False, echo=lambda _: None, step_timeout=60)
    policy = tmp_path / "demo-h100.yaml"  # the demo writes its class beside the ledger
    (cls,) = [d for d in yaml.safe_load_all(SETUP) if d["kind"] == "SandboxClass"]
    assert yaml.safe_load(policy.read_text()) == cls
    out = io.StringIO()
    argv = ["replay", "--ledger", str(tmp_path / "ledger"), "--idle-policy", str(policy),
            "--format", "json"]  # fmt: skip
    monkeypatch.setattr("sys.argv", ["sandboxer", *argv])
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    doc = json.loads(out.getvalue())
    happened = doc["recorded"]
    assert happened["reclaims"] >= 1  # alice's idle notebook
    assert happened["exhaustions"] >= 1  # bob's budget
    assert doc["reclaims"] == happened["reclaims"]
    assert doc["prematureReclaims"] == happened["prematureReclaims"]
    who = [(i["owner"], i["name"]) for i in doc["interrupted"]]
    assert who == [(i["owner"], i["name"]) for i in happened["interrupted"]]
    assert doc["reclaimedGpuHours"] == pytest.approx(happened["reclaimedGpuHours"], abs=0.002)
    assert doc["missingHours"] == []
