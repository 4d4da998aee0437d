"""Idle reclaim and budgets on the playground, through the real kubectl (issues 6 and 7).

Everything runs for real: the agents meter the simulated GPUs the annotation drives, the
operator's loop folds their reports, warns, suspends and writes the ledger.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Any

import pytest

from sandboxer.devcluster.playground import Playground
from tests.integration.conftest import Kubectl
from tests.integration.manifests import busy_sandbox, compute_budget, sandbox_class

pytestmark = pytest.mark.slow  # a whole playground or benchmark run each

AFTER, WARN_BEFORE, REPORT = 6, 3, 0.5  # seconds; the playground fixture reports every 0.5 s


def quick_class(after: float, warn_before: float) -> str:
    """A class with a short idle window, for reclaim tests on real time."""
    return sandbox_class("quick", idle={"after": f"{after}s", "warnBefore": f"{warn_before}s"})


QUICK_CLASS = quick_class(AFTER, WARN_BEFORE)


def sandbox(name: str, utilization: int, cls: str = "quick", gpus: int = 1) -> str:
    return busy_sandbox(name, utilization, cls, gpus)


async def get(kubectl: Kubectl, *what: str, user: str = "alice") -> Any:
    return (await kubectl("get", *what, "-o", "json", user=user)).json()


async def wait(kubectl: Kubectl, *args: str, within: int = 30, user: str = "alice") -> None:
    await kubectl("wait", *args, f"--timeout={within}s", user=user)


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def events(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    """Events about alice's sandbox, read by admin: the chart's sandboxer-user grants no Events."""
    about = ("--field-selector", f"involvedObject.name={name}")
    listed = await get(kubectl, "events", *about, "-n", "team-ml", user="admin")
    return sorted(listed["items"], key=lambda e: e.get("lastTimestamp") or "")


async def test_idle_sandbox_is_warned_then_reclaimed_busy_one_stays_resume_resets(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    kubectl = pg_kubectl
    await kubectl("apply", "-f", "-", input=QUICK_CLASS)
    await kubectl("apply", "-f", "-", user="alice", input=sandbox("idle", 0))
    await kubectl("apply", "-f", "-", user="alice", input=sandbox("busy", 90))
    await wait(kubectl, "--for=condition=Ready", "esb/idle", "esb/busy")

    await wait(kubectl, "--for=jsonpath={.status.suspendedReason}=Idle", "esb/idle")
    idle = await get(kubectl, "esb", "idle")
    assert idle["spec"]["suspend"] is True
    reasons = [e["reason"] for e in await events(kubectl, "idle")]
    assert reasons.index("IdleWarning") < reasons.index("IdleReclaimed")
    reclaimed = next(e for e in await events(kubectl, "idle") if e["reason"] == "IdleReclaimed")
    started = at(idle["status"]["conditions"][0]["lastTransitionTime"])
    for cond in idle["status"]["conditions"]:
        if cond["type"] == "Idle":
            assert cond["status"] == "True"
            assert "every GPU at or below 5%" in cond["message"]
    # Never idle at all: reclaimed within the window plus one report interval (and a pass,
    # plus the Event timestamps' one-second resolution).
    latency = (at(reclaimed["lastTimestamp"]) - started).total_seconds()
    assert latency <= AFTER + REPORT + 0.5 + 2, latency

    busy = await get(kubectl, "esb", "busy")
    assert busy["spec"].get("suspend") is False
    assert busy["status"]["phase"] == "Ready"
    assert "IdleWarning" not in [e["reason"] for e in await events(kubectl, "busy")]

    # Resume: the same workspace, a full window again (no instant re-cull, kubeflow#6648).
    # `sandboxer resume` (the same merge patch as kubectl's) as alice.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandboxer.cli", "resume", "idle",
        "--kubeconfig", str(playground.kubeconfig_path), "--context", "alice", "-n", "team-ml",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    said = (await proc.communicate())[0].decode()
    assert proc.returncode == 0, said
    assert "Resumed team-ml/idle" in said
    await wait(kubectl, "--for=condition=Ready", "esb/idle")
    resumed = await get(kubectl, "esb", "idle")
    assert resumed["status"].get("suspendedReason") is None
    restarted = at(resumed["status"]["startedAt"])
    await wait(kubectl, "--for=jsonpath={.status.suspendedReason}=Idle", "esb/idle")
    second = [e for e in await events(kubectl, "idle") if e["reason"] == "IdleReclaimed"][-1]
    assert (at(second["lastTimestamp"]) - restarted).total_seconds() >= AFTER - 1


async def test_a_budget_too_small_for_the_minimum_runtime_is_refused_until_it_allows_short_ones(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    """The warn-suspend-top-up-resume flow runs in tests/integration/test_demo.py (through
    kubectl, with a short minimum runtime); here the default one-hour minimum refuses, bad
    minRuntime values are refused by the API, and `minRuntime: 0s` admits the short session."""
    kubectl = pg_kubectl
    tiny = json.dumps(
        compute_budget("tiny", ["bob"], allowance={"gpuHours": 0.5}, onExhausted="Suspend")
    )
    await kubectl("apply", "-f", "-", input=tiny)
    # bob is also in group team-vision, whose budget pays for h100 (every budget must allow).
    hot = sandbox("hot", 95, "h100", gpus=2)
    refused = await kubectl("apply", "-f", "-", user="bob", input=hot, check=False)
    assert refused.rc != 0
    text = refused.stdout + refused.stderr
    assert "bob has 0.5 of 0.5 GPU-hours left" in text, text
    assert "budget tiny" in text
    # One GPU would last half an hour, under the one-hour minimum: still refused.
    small = sandbox("small", 0, "h100", gpus=1)
    still = await kubectl("apply", "-f", "-", user="bob", input=small, check=False)
    assert still.rc != 0
    assert "under the budget's minRuntime of 1h" in still.stdout + still.stderr
    # A minRuntime that is no duration, or a negative one, is refused by the API, field named.
    for bad in ("-1h", "abc"):
        patch = json.dumps({"spec": {"minRuntime": bad}})
        wrong = await kubectl(
            "patch", "computebudget", "tiny", "--type", "merge", "-p", patch, check=False
        )
        assert wrong.rc != 0
        assert "spec.minRuntime" in wrong.stderr, wrong.stderr
    stored = await get(kubectl, "computebudget", "tiny", user="admin")
    assert stored["spec"]["minRuntime"] == "1h"  # the schema default; nothing bad was kept
    # The team allows short sessions: 0s turns the check off, and the half hour is admitted.
    await kubectl(
        "patch", "computebudget", "tiny", "--type", "merge", "-p", '{"spec":{"minRuntime":"0s"}}'
    )
    await kubectl("apply", "-f", "-", user="bob", input=small)
    await wait(kubectl, "--for=condition=Ready", "esb/small", user="bob")
    await wait(
        kubectl, "--for=jsonpath={.status.subjects[0].runningGpus}=1", "computebudget/tiny",
        user="admin",
    )  # fmt: skip
    budget = await get(kubectl, "computebudget", "tiny", user="admin")
    assert budget["status"]["period"]["name"] == datetime.now().strftime("%Y-%m")
    assert budget["status"]["subjects"][0]["name"] == "bob"


async def test_a_notebook_that_holds_its_cuda_context_at_zero_is_reclaimed(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    """As on a real node: after its first GPU use, the kernel keeps a context (NVML lists a
    process and memory) while the GPU does nothing. Activity, not presence, decides."""
    kubectl = pg_kubectl
    await kubectl("apply", "-f", "-", input=QUICK_CLASS)
    await kubectl("apply", "-f", "-", user="alice", input=sandbox("held", 80))
    await wait(kubectl, "--for=condition=Ready", "esb/held")
    node = (await get(kubectl, "esb", "held"))["status"]["node"]
    await kubectl(
        "annotate", "--overwrite", "esb/held", "sim.sandboxer.io/gpu-utilization=0", user="alice"
    )

    async def context_held_at_zero() -> bool:
        report = await get(kubectl, "gpunodereport", node, user="admin")
        gpus = report.get("status", {}).get("gpus", [])
        return any(g["processes"] > 0 and g["utilizationPercent"] == 0 for g in gpus)

    async with asyncio.timeout(30):
        while not await context_held_at_zero():
            pass  # each check is a kubectl round trip
    await wait(kubectl, "--for=jsonpath={.status.suspendedReason}=Idle", "esb/held")
    idle = await get(kubectl, "esb", "held")
    [cond] = [c for c in idle["status"]["conditions"] if c["type"] == "Idle"]
    assert "idle process(es) holding it" in cond["message"], cond["message"]
