"""Idle reclaim with Jupyter activity in the loop's engine: a GPU-less notebook is judged by its
Jupyter readings alone, and never reclaimed while there is none."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.loop.snapshot import JupyterReading, SandboxView, Snapshot
from tests.unit.test_accounting_loop import CLASS, T0, World
from tests.unit.test_replay import POLICY, run_cli

JUPYTER_CLASS = SandboxClassSpec.model_validate(
    {**CLASS.dump(), "idle": {"after": "10m", "warnBefore": "2m", "useJupyterActivity": True}}
)


class CpuWorld(World):
    """alice's sandbox without GPUs, in a class that reads Jupyter activity."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.jupyter: JupyterReading | str | None = None

    def view(self) -> SandboxView:
        spec = ExperimentSandboxSpec.model_validate(
            {"class": "h100", "gpus": 0, "owner": "alice", "suspend": self.suspended}
        )
        return SandboxView("sb-uid", "team", "nb", 1, spec, self.status)

    def snapshot(self) -> Snapshot:
        snap = super().snapshot()
        snap.classes = {"h100": JUPYTER_CLASS}
        snap.reports = {}
        if self.jupyter is not None:
            snap.jupyter = {("team", "nb"): self.jupyter}
        return snap

    def reading(self, minutes_ago: float) -> JupyterReading:
        return JupyterReading(self.now - timedelta(minutes=minutes_ago), 1, 1, self.now)


def test_without_a_reading_a_gpu_less_sandbox_is_never_idle_reclaimed(tmp_path: Path) -> None:
    world = CpuWorld(tmp_path)
    world.jupyter = "Jupyter not reachable (ClientConnectorError)"
    for _ in range(120):  # an hour
        world.step(30)
    assert not world.suspended


def test_jupyter_activity_alone_keeps_then_reclaims_a_gpu_less_sandbox(tmp_path: Path) -> None:
    world = CpuWorld(tmp_path)
    for _ in range(60):  # 30 minutes of a user who keeps working
        world.jupyter = world.reading(minutes_ago=1)
        world.step(30)
    assert not world.suspended
    last_seen = world.now - timedelta(minutes=1)
    for _ in range(40):  # she leaves: the last activity stays where it was
        world.jupyter = JupyterReading(last_seen, 1, 0, world.now)
        world.step(30)
        if world.suspended:
            break
    assert world.suspended
    assert world.status.suspended_reason == "Idle"
    # Reclaimed a window after her last activity (within a pass), not a window after start.
    assert timedelta(minutes=10) <= world.now - last_seen <= timedelta(minutes=11)
    assert world.now - T0 > timedelta(minutes=30)


JUPYTER_POLICY = POLICY.replace("threshold: 5}", "threshold: 5, useJupyterActivity: true}")


def test_the_replay_reads_the_recorded_jupyter_activity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loop records what Jupyter said; replaying the recorded policy reclaims the GPU-less
    sandbox when the loop did, and a longer window (past her last activity) not at all."""
    world = CpuWorld(tmp_path / "ledger")
    world.engine.run_pass(world.snapshot())
    for _ in range(20):  # ten minutes of work
        world.jupyter = world.reading(minutes_ago=0.5)
        world.step(30)
    last_seen = world.now - timedelta(minutes=0.5)
    while not world.suspended:
        world.jupyter = JupyterReading(last_seen, 1, 0, world.now)
        world.step(30)
    for _ in range(10):
        world.step(30)
    assert "useJupyterActivity" in JUPYTER_POLICY
    policy = tmp_path / "h100.yaml"
    policy.write_text(JUPYTER_POLICY)
    args = ["--ledger", str(tmp_path / "ledger"), "--idle-policy", str(policy)]
    code, out, err = run_cli(capsys, *args, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["recorded"]["reclaims"] == doc["reclaims"] == 1
    code, out, err = run_cli(capsys, *args, "--idle-after", "1h", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["sweep"][0]["reclaims"] == 0
