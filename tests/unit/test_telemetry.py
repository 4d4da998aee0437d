"""Telemetry kept by the accounting loop: one row per report read or state change, exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandboxer.api.sandbox import ExperimentSandboxStatus
from sandboxer.ledger import telemetry
from sandboxer.ledger.store import DirectoryLedgerStore
from sandboxer.ledger.telemetry import GPUSample, TelemetryError, TelemetryRow
from sandboxer.loop.accounting_loop import AccountingLoop
from sandboxer.loop.settings import LoopSettings
from tests.unit.test_accounting_loop import T0, World


def resume(world: World) -> None:
    """The owner sets spec.suspend: false and the notebook is Ready again."""
    world.suspended = False
    world.status = ExperimentSandboxStatus.model_validate(
        {**world.status.dump(), "startedAt": world.now.isoformat(), "suspendedReason": None}
    )


def everything(world: World) -> list[TelemetryRow]:
    return telemetry.read(world.engine.store, T0 - timedelta(days=1), T0 + timedelta(days=1)).rows


def test_rows_round_trip_through_parquet() -> None:
    at = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)
    row = TelemetryRow(
        at=at, sandbox_uid="u1", namespace="team", name="nb", owner="alice",
        sandbox_class="h100", state="running", gpus=2, billing_weight=1.5, started_at=T0,
        idle_after="20m", node="node-a", report="e1/4",
        gpu=(GPUSample("GPU-a", 3.0, 1, T0), GPUSample("GPU-b", None, 0, None)),
    )  # fmt: skip
    gone = TelemetryRow(
        at=at, sandbox_uid="u2", namespace="team", name="old", owner="bob",
        sandbox_class="h100", state="suspended", gpus=1, suspended_reason="Idle",
    )  # fmt: skip
    data = telemetry.encode([gone, row])
    assert telemetry.encode([row, gone]) == data  # deterministic
    back = telemetry.decode(data, "f")
    assert sorted(back, key=lambda r: r.sandbox_uid) == [row, gone]
    assert back[0].jupyter_last_activity is None


def test_corrupt_file_names_itself() -> None:
    with pytest.raises(TelemetryError, match=r"telemetry file s3://b/x\.parquet is not readable"):
        telemetry.decode(b"not parquet", "s3://b/x.parquet")


def test_loop_records_each_report_once_and_the_reclaim_with_its_reason(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.engine.run_pass(world.snapshot())
    for _ in range(4):
        world.step(30, util=60)
    while not world.suspended:
        world.step(30, util=0)
    reclaimed_at = world.now
    for _ in range(3):
        world.step(30, util=0)  # suspended: no GPU reports are read
    resume(world)
    for _ in range(2):
        world.step(30, util=70)
    rows = everything(world)
    assert len({r.key for r in rows}) == len(rows)
    suspended = [r for r in rows if r.state == "suspended"]
    assert suspended[0].at == reclaimed_at
    assert suspended[0].suspended_reason == "Idle"
    reports = [r for r in rows if r.report]
    assert len({r.report for r in reports}) == len(reports)
    assert all(r.state == "running" for r in reports)
    assert [r.gpu[0].utilization_percent for r in reports[:3]] == [0, 60, 60]
    assert reports[-1].started_at is not None and reports[-1].started_at > reclaimed_at
    assert [r.jupyter_last_activity for r in rows] == [None] * len(rows)


def test_restarted_loop_does_not_repeat_rows(tmp_path: Path) -> None:
    world = World(tmp_path)
    for _ in range(10):
        world.step(30, util=50)
    before = len(everything(world))
    # A new engine sees the same node report again (reports are the latest per node).
    world.engine = AccountingLoop(world.engine.store, world.engine.settings)
    world.engine.run_pass(world.snapshot())
    world.engine.run_pass(world.snapshot())
    rows = everything(world)
    assert len(rows) == before
    for _ in range(3):
        world.step(30, util=50)
    rows = everything(world)
    assert len(rows) == before + 3
    assert max(Counter(r.report for r in rows if r.report).values()) == 1


def test_one_file_per_hour_and_retention(tmp_path: Path) -> None:
    store = DirectoryLedgerStore(tmp_path)
    world = World(tmp_path)
    world.engine = AccountingLoop(
        store, LoopSettings(telemetry_retention=timedelta(hours=2), usage_refresh=timedelta(0))
    )
    for _ in range(4 * 120 + 2):  # four hours of reports, into the fifth
        world.step(30, util=50)
    files = store.list_telemetry()
    merged = [f.hour for f in files if not f.part]
    assert merged == [T0 + timedelta(hours=2), T0 + timedelta(hours=3)]  # older ones expired
    assert {f.hour for f in files if f.part} == {T0 + timedelta(hours=4)}  # the open hour
    third = telemetry.read(store, T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    assert len([r for r in third.rows if r.report]) == 120
    assert (third.start, third.through) == (T0 + timedelta(hours=2), T0 + timedelta(hours=3))


def test_parts_a_crash_left_beside_a_merged_hour_are_not_read_twice(tmp_path: Path) -> None:
    world = World(tmp_path)
    store = world.engine.store
    first = None
    for _ in range(125):  # past 11:00: the 10:00 hour is merged
        world.step(30, util=50)
        parts = [f for f in store.list_telemetry() if f.part and f.hour == T0]
        if parts and first is None:
            first = (parts[0], store.read_telemetry_bytes(parts[0]))
    assert first is not None
    before = telemetry.read(store, T0, T0 + timedelta(hours=2)).rows
    # A crash between writing the merged file and deleting the parts leaves a part behind.
    store.write_telemetry(T0, first[1], part=telemetry.part_time(first[0].part))
    assert telemetry.read(store, T0, T0 + timedelta(hours=2)).rows == before
    world.engine = AccountingLoop(store, world.engine.settings)  # restarted: tidies up
    world.step(30, util=50)
    assert [f.part for f in store.list_telemetry() if f.hour == T0] == [""]
