"""Budget announcements and friction across an operator restart (issue 15 point 4).

`sandboxer dev --external-operator` serves the playground; `sandboxer operator --dev` runs as
its own process. It warns alice's small budget and counts a refusal, then is killed with SIGKILL.
The one started again reads both back from the ComputeBudget's status: it announces the
exhaustion once, never the warning a second time, and the refusal count goes on from 1.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.manifests import busy_sandbox, compute_budget
from tests.integration.test_playground_users_operator import (
    Operator,
    ctl,
    events_about,
    external_dev,  # noqa: F401 (the fixture)
    ready,
)
from tests.integration.test_playground_users_operator import until as wait_until

pytestmark = pytest.mark.slow  # a playground and two operator processes

LOOP = 0.5  # the operator's pass interval (the playground reports every 0.5 s)
# One GPU uses 0.01 GPU-hours in 36 s: the warning at 25 % comes after about 9 s, the
# exhaustion after 36 s, which leaves the restart time in between.
SMALL = json.dumps(
    compute_budget(
        "small",
        ["alice"],
        allowance={"gpuHours": 0.01},
        warnAt=[25],
        maxConcurrentGpus=1,
        minRuntime="0s",
        onExhausted="Suspend",
    )
)


def sandbox(name: str) -> str:
    return busy_sandbox(name, 90)


async def alice_in_small(config: Path) -> dict[str, Any]:
    budget = (await ctl(config, "admin", "get", "computebudget", "small", "-o", "json")).json()
    subjects = budget.get("status", {}).get("subjects", [])
    return next((s for s in subjects if s["name"] == "alice"), {})


def until(
    config: Path, what: str, test: Callable[[dict[str, Any]], bool], within: float
) -> Awaitable[dict[str, Any]]:
    """alice's figures in the budget once `test` holds."""
    return wait_until(lambda: alice_in_small(config), what, test, within)


def budget_events(config: Path, reason: str) -> Awaitable[list[dict[str, Any]]]:
    return events_about(config, "admin", "small", reason, "-A")


async def test_restart_keeps_announced_warnings_and_friction_counters(
    external_dev: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, _ = external_dev
    monkeypatch.setenv("SANDBOXER_LOOP_INTERVAL", str(LOOP))
    operator = Operator(config, tmp_path / "operator.log")
    await operator.start()
    await ctl(config, "admin", "apply", "-f", "-", input=SMALL)
    await ctl(config, "alice", "create", "-f", "-", input=sandbox("train"))
    await ready(config, "train")
    second = await ctl(config, "alice", "create", "-f", "-", input=sandbox("more"), check=False)
    assert second.rc != 0 and "(maxConcurrentGpus)" in second.stderr, second.stderr

    before = await until(
        config, "warning and refusal", lambda s: s.get("warned") == [25] and s["refusals"], 30
    )
    assert before["refusals"] == 1
    assert not before.get("announcedExhausted")
    assert len(await budget_events(config, "BudgetWarning")) == 1

    # Killed between the warning and the exhaustion: the new process has only the API to go by.
    assert await operator.stop(signal.SIGKILL) == -signal.SIGKILL
    await operator.start()
    after = await until(config, "exhaustion", lambda s: s.get("announcedExhausted", False), 90)
    await ctl(
        config, "alice", "wait", "--for=jsonpath={.spec.suspend}=true", "esb/train",
        "--timeout=30s",
    )  # fmt: skip
    assert after["warned"] == [25]
    assert after["refusals"] == 1  # counted on from the status, not zeroed
    assert after["exhaustions"] == 1
    assert len(await budget_events(config, "BudgetWarning")) == 1  # not sent a second time
    assert len(await budget_events(config, "BudgetExhausted")) == 1
    assert await operator.stop(signal.SIGTERM) == 0
