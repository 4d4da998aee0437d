"""Start timeout: a scheduled pod whose notebook never gets Ready is suspended (issue 16.5)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sandboxer.api.sandbox import ExperimentSandboxStatus
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import get_condition
from sandboxer.loop.accounting_loop import AccountingLoop
from sandboxer.reclaim.startup import StartFailed, check_startup
from tests.unit.test_accounting_loop import T0, World

TEN_MIN = timedelta(minutes=10)
CRASH = "container notebook: CrashLoopBackOff (back-off 10s restarting failed container=notebook)"


def cond(type_: str, status: str, reason: str, at: datetime, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": at.isoformat(), "observedGeneration": 1}  # fmt: skip


def crashing(scheduled_at: datetime = T0, not_ready_at: datetime | None = None) -> dict[str, Any]:
    """Status the handlers derive for a pod bound at `scheduled_at` whose container crashes."""
    return {
        "node": "node-a",
        "conditions": [
            cond("Suspended", "False", "Running", T0 - timedelta(minutes=1)),
            cond("Scheduled", "True", "Scheduled", scheduled_at),
            cond("Ready", "False", "CrashLoopBackOff", not_ready_at or T0 - timedelta(minutes=1),
                 CRASH),
        ],
    }  # fmt: skip


def check(raw: dict[str, Any], at: datetime, timeout: timedelta = TEN_MIN) -> object:
    status = ExperimentSandboxStatus.model_validate(raw)
    return check_startup(status, 1, timeout, at)


def test_the_timeout_counts_from_scheduling_and_the_message_says_what_failed() -> None:
    assert check(crashing(), T0 + TEN_MIN - timedelta(seconds=1)) == T0 + TEN_MIN
    failed = check(crashing(), T0 + TEN_MIN)
    assert isinstance(failed, StartFailed)
    assert failed.message == f"not Ready 10m after its pod was scheduled on node-a: {CRASH}"


def test_a_notebook_that_was_ready_and_broke_counts_from_when_it_stopped_being_ready() -> None:
    later = T0 + timedelta(hours=2)
    raw = crashing(scheduled_at=T0, not_ready_at=later)
    assert check(raw, later + timedelta(minutes=9)) == later + TEN_MIN
    assert isinstance(check(raw, later + TEN_MIN), StartFailed)


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("ready", {2: cond("Ready", "True", "NotebookReady", T0)}),
        ("waiting for a GPU: no GPU held", {1: cond("Scheduled", "False", "InsufficientGPU", T0)}),
        ("status from before a resume", {2: cond("Ready", "False", "Suspended", T0)}),
        ("for an older spec", {2: {**crashing()["conditions"][2], "observedGeneration": 0}}),
    ],
)  # fmt: skip
def test_nothing_to_time_out(why: str, change: dict[int, dict[str, Any]]) -> None:
    raw = crashing()
    for i, replacement in change.items():
        raw["conditions"][i] = replacement
    assert check(raw, T0 + timedelta(days=1)) is None, why


def test_zero_turns_it_off() -> None:
    assert check(crashing(), T0 + timedelta(days=1), timedelta(0)) is None


def test_the_class_field_defaults_to_ten_minutes_and_refuses_a_bad_duration() -> None:
    base = {"image": "nb:1", "gpu": {"model": "H100"}}
    assert SandboxClassSpec.model_validate(base).startup_timeout == "10m"
    assert SandboxClassSpec.model_validate({**base, "startupTimeout": "0s"}).startup_timeout == "0s"
    with pytest.raises(ValidationError, match="use Go-style units like '90s'"):
        SandboxClassSpec.model_validate({**base, "startupTimeout": "ten minutes"})


class Crashing(World):
    """The accounting loop's test world with alice's sandbox crash-looping since T0."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.status = ExperimentSandboxStatus.model_validate(crashing())

    def pass_(self, util: float = 0):  # type: ignore[no-untyped-def]
        return self.step(30, util=util)


def test_the_loop_suspends_once_with_reason_condition_and_event(tmp_path: Path) -> None:
    world = Crashing(tmp_path)
    for _ in range(19):  # 9.5 minutes
        result = world.pass_()
        assert not world.suspended
        assert not [e for e in result.events if e.reason == "StartFailed"]
    result = world.pass_()  # 10 minutes after the pod was scheduled
    assert world.suspended
    assert world.status.suspended_reason == "StartFailed"
    [event] = [e for e in result.events if e.reason == "StartFailed"]
    assert event.type == "Warning"
    assert CRASH in event.message
    assert "set spec.suspend: false" in event.message
    started = get_condition(world.status.conditions, "Started")
    assert started is not None
    assert (started.status, started.reason) == ("False", "StartFailed")
    assert CRASH in started.message
    [(_, reason, saved)] = result.reclaimed
    assert (reason, saved > 0) == ("StartFailed", True)

    # The next pass still sees the sandbox running (the index lags the patch): no second
    # suspension, no second Event.
    world.suspended = False
    result = world.pass_()
    assert not result.sandbox_writes or not any(w.suspend for w in result.sandbox_writes)
    assert not [e for e in result.events if e.reason == "StartFailed"]


def test_a_restarted_operator_decides_from_status_alone(tmp_path: Path) -> None:
    world = Crashing(tmp_path)
    for _ in range(10):
        world.pass_()
    world.engine = AccountingLoop(world.engine.store, world.engine.settings)  # a new leader
    for _ in range(9):
        world.pass_()
        assert not world.suspended
    world.pass_()
    assert world.suspended  # on the original schedule: 10 minutes after scheduling
    assert world.now == T0 + TEN_MIN


def test_a_ready_notebook_is_not_suspended_and_clears_an_old_start_failure(tmp_path: Path) -> None:
    world = Crashing(tmp_path)
    world.status = ExperimentSandboxStatus.model_validate(
        {
            "node": "node-a",
            "startedAt": T0.isoformat(),
            "conditions": [
                cond("Scheduled", "True", "Scheduled", T0),
                cond("Ready", "True", "NotebookReady", T0),
                cond("Started", "False", "StartFailed", T0 - timedelta(hours=1), CRASH),
            ],
        }
    )
    world.pass_()
    started = get_condition(world.status.conditions, "Started")
    assert started is not None
    assert (started.status, started.reason) == ("True", "NotebookReady")
    for _ in range(40):
        world.pass_(util=60)  # busy: idle reclaim has no say either
    assert not world.suspended
