"""Idle reclaim across an operator restart, through the real path (issue 16 point 4).

`sandboxer dev --external-operator` serves the playground; `sandboxer operator --dev` runs as
its own process and is killed (SIGKILL, nothing flushed) after it warned an idle sandbox. The
one started again reads the window and the warning back from the sandbox's status: it reclaims
on the schedule the first one announced and does not warn a second time.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_playground_idle_budget import quick_class
from tests.integration.test_playground_users_operator import (
    Operator,
    ctl,
    events_about,
    external_dev,  # noqa: F401 (the fixture)
    ready,
)
from tests.integration.test_playground_users_operator import until as wait_until

pytestmark = pytest.mark.slow  # a playground and two operator processes

# The warning comes after 8 s of quiet; the rest of the window leaves the restart time.
AFTER, WARN_BEFORE = 40, 32  # seconds
LOOP = 0.5  # the operator's pass interval (the playground reports every 0.5 s)

QUICK_CLASS = quick_class(AFTER, WARN_BEFORE)
IDLE = json.dumps(
    {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": "idle", "annotations": {"sim.sandboxer.io/gpu-utilization": "0"}},
        "spec": {"class": "quick", "gpus": 1},
    }
)


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def sandbox(config: Path) -> dict[str, Any]:
    return (await ctl(config, "alice", "get", "esb", "idle", "-o", "json")).json()


def until(
    config: Path, what: str, test: Callable[[dict[str, Any]], bool], within: float
) -> Awaitable[dict[str, Any]]:
    """The sandbox once `test` holds for it."""
    return wait_until(lambda: sandbox(config), what, test, within)


def events(config: Path, reason: str) -> Awaitable[list[dict[str, Any]]]:
    # admin reads them: the chart's sandboxer-user role grants no Events.
    return events_about(config, "admin", "idle", reason, "-n", "team-ml")


async def listed(config: Path, reason: str) -> dict[str, Any]:
    return {"items": await events(config, reason)}


async def test_restart_after_the_warning_reclaims_on_schedule_and_warns_once(
    external_dev: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, _ = external_dev
    monkeypatch.setenv("SANDBOXER_LOOP_INTERVAL", str(LOOP))
    operator = Operator(config, tmp_path / "operator.log")
    await operator.start()
    await ctl(config, "admin", "apply", "-f", "-", input=QUICK_CLASS)
    await ctl(config, "alice", "create", "-f", "-", input=IDLE)
    await ready(config, "idle")

    warned = await until(config, "warning", lambda e: "warnedAt" in e["status"], AFTER)
    status = warned["status"]
    idle_since, reclaim_at = at(status["idleSince"]), at(status["reclaimAt"])
    assert (reclaim_at - idle_since).total_seconds() == AFTER
    assert [e["reason"] for e in await events(config, "IdleWarning")] == ["IdleWarning"]

    # Killed mid-window: the new process has only the cluster (status) to go by.
    assert await operator.stop(signal.SIGKILL) == -signal.SIGKILL
    await operator.start()
    back = datetime.now(UTC)
    assert back < reclaim_at, "the restart took longer than the rest of the window"
    kept = (await sandbox(config))["status"]
    assert (kept["idleSince"], kept["reclaimAt"]) == (status["idleSince"], status["reclaimAt"])

    await ctl(
        config, "alice", "wait", "--for=jsonpath={.status.suspendedReason}=Idle", "esb/idle",
        f"--timeout={AFTER + 30}s",
    )  # fmt: skip
    # The loop posts its Events after its patches: wait for this one as for the status.
    found = await wait_until(
        lambda: listed(config, "IdleReclaimed"), "IdleReclaimed Event", lambda f: f["items"], 30
    )
    [reclaimed] = found["items"]
    late = (at(reclaimed["lastTimestamp"]) - reclaim_at).total_seconds()
    # On the announced schedule: never before it (Event times have whole seconds), and no
    # later than a report and a pass or two after it.
    assert -1 <= late <= 2 * LOOP + 0.5 + 2, late
    assert len(await events(config, "IdleWarning")) == 1  # the new leader did not warn again
    assert await operator.stop(signal.SIGTERM) == 0
