"""Telemetry on S3 (moto's server over HTTP), replayed by the `sandboxer` executable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandboxer.ledger import telemetry
from sandboxer.ledger.store import S3LedgerStore
from sandboxer.loop.accounting_loop import AccountingLoop
from sandboxer.storage.s3 import S3Options
from tests.integration.test_s3_chargeback import BUCKET, options, s3, s3_endpoint
from tests.unit.test_accounting_loop import T0, World
from tests.unit.test_replay import POLICY

__all__ = ["options", "s3", "s3_endpoint"]  # the fixtures this module uses

SANDBOXER = Path(sys.executable).with_name("sandboxer")


def test_loop_telemetry_on_s3_replays_from_the_command_line(
    tmp_path: Path, s3: Any, options: S3Options
) -> None:
    url = f"s3://{BUCKET}/ledger"
    world = World(tmp_path)
    world.engine = AccountingLoop(S3LedgerStore(url, options), world.engine.settings)
    world.engine.run_pass(world.snapshot())
    for _ in range(10):
        world.step(30, util=80)
    while not world.suspended:
        world.step(30, util=0)
    for _ in range(100):  # past the hour: its parts are merged into one object
        world.step(30, util=0)
    keys = [k for k in world.engine.store.blobs.list_keys("telemetry/") if ".part-" not in k]
    assert keys == ["telemetry/2026-11-26/10.parquet"]
    assert telemetry.read(world.engine.store, T0, T0.replace(hour=12)).rows
    policy = tmp_path / "h100.yaml"
    policy.write_text(POLICY)
    env = {**os.environ, "SANDBOXER_S3_ENDPOINT_URL": options.endpoint_url or "",
           "SANDBOXER_S3_REGION": "us-east-1", "SANDBOXER_S3_ADDRESSING_STYLE": "path"}  # fmt: skip
    done = subprocess.run(
        [str(SANDBOXER), "replay", "--ledger", url, "--idle-policy", str(policy),
         "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ledger"] == url
    assert doc["reclaims"] == doc["recorded"]["reclaims"] == 1
    assert doc["missingHours"] == []
    bad = subprocess.run(
        [str(SANDBOXER), "replay", "--ledger", url, "--idle-policy", str(policy),
         "--period", "2026-10"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"error: no telemetry for period 2026-10 in {url}"
