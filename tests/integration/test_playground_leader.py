"""Two operator processes on one playground: one loop, one budget decision, and a takeover.

`sandboxer dev --external-operator` serves the playground; two `sandboxer operator --dev`
processes join it. The first one up takes the leader Lease and runs the accounting loop; the
second is the one the playground's webhooks call, so every budget check of alice's burst is
answered by a standby, which must hand it to the leader: her `maxConcurrentGpus: 2` holds. The
leader is then killed with SIGKILL, and the standby takes over within the Lease duration and
meters on; stopped with SIGTERM instead, a leader hands the Lease over without a takeover.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.manifests import busy_sandbox, compute_budget
from tests.integration.test_playground_users_operator import (
    Operator,
    ctl,
    external_dev,  # noqa: F401 (the fixture)
    ready,
    until,
)

pytestmark = pytest.mark.slow  # a playground and two operator processes

CAP = json.dumps(compute_budget("cap", ["alice"], allowance={"gpuHours": 50}, maxConcurrentGpus=2))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox(name: str) -> str:
    return busy_sandbox(name, 80)


async def lease(config: Path) -> dict[str, Any]:
    found = await ctl(config, "admin", "get", "lease", "sandboxer-operator", "-n", "sandboxer",
                      "-o", "json", check=False)  # fmt: skip
    return found.json() if found.rc == 0 else {}


def held_by(port: int) -> Any:
    """The Lease is held by the operator whose metrics (and peer endpoint) are on `port`."""
    url = f"http://127.0.0.1:{port}/peer/budget-check"

    def test(obj: dict[str, Any]) -> bool:
        annotations = obj.get("metadata", {}).get("annotations", {})
        return bool(obj.get("spec", {}).get("holderIdentity")) and (
            annotations.get("sandboxer.io/budget-check-url") == url
        )

    return test


async def leader_gauge(port: int) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    [line] = [
        x for x in text.splitlines()
        if x.startswith('sandboxer_leader_election_master_status{name="sandboxer-operator"}')
    ]  # fmt: skip
    return float(line.split()[-1])


async def alice_used(config: Path) -> float:
    budget = (await ctl(config, "admin", "get", "computebudget", "cap", "-o", "json")).json()
    subjects = budget.get("status", {}).get("subjects", [])
    return float(next((s["usedGpuHours"] for s in subjects if s["name"] == "alice"), 0.0))


async def test_two_operators_run_one_loop_and_the_standby_takes_over(
    external_dev: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, _ = external_dev
    monkeypatch.setenv("SANDBOXER_LOOP_INTERVAL", "0.5")
    leader_port = free_port()
    first = Operator(
        config, tmp_path / "first.log",
        "--webhook-port", str(free_port()), "--metrics-port", str(leader_port),
    )  # fmt: skip
    await first.start(admitted=False)  # the playground does not call its webhooks
    await until(lambda: lease(config), "a leader", held_by(leader_port), 30)
    standby_port = free_port()
    second = Operator(config, tmp_path / "second.log", "--metrics-port", str(standby_port))
    await second.start()  # admits a dry run: the standby asked the leader
    assert await leader_gauge(leader_port) == 1.0
    assert await leader_gauge(standby_port) == 0.0

    # A burst of four one-GPU creates, every one answered by the standby: the leader's
    # reservations count each admitted one at once, so exactly two pass the cap of 2.
    await ctl(config, "admin", "apply", "-f", "-", input=CAP)
    burst = await asyncio.gather(
        *(ctl(config, "alice", "create", "-f", "-", input=sandbox(f"nb{i}"), check=False)
          for i in range(4))
    )  # fmt: skip
    admitted = [r for r in burst if r.rc == 0]
    refused = [r for r in burst if r.rc != 0]
    assert len(admitted) == 2, [r.stderr for r in burst]
    assert all("(maxConcurrentGpus)" in r.stderr for r in refused), [r.stderr for r in refused]
    names = [i["metadata"]["name"] for i in
             (await ctl(config, "alice", "get", "esb", "-o", "json")).json()["items"]]  # fmt: skip
    assert len(names) == 2
    for name in names:
        await ready(config, name)
    assert "Started accounting loop" not in (tmp_path / "second.log").read_text()
    assert (tmp_path / "first.log").read_text().count("Started accounting loop") == 1

    # The leader dies: after the Lease duration (3 s in the playground) the standby leads,
    # counting one transition, and the loop goes on metering alice's two GPUs.
    metered = await until(_figures_of(config), "metering", lambda f: f["used"] > 0, 120)
    transitions = (await lease(config))["spec"].get("leaseTransitions", 0)
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    taken = await until(lambda: lease(config), "a takeover", held_by(standby_port), 30)
    assert taken["spec"]["leaseTransitions"] == transitions + 1
    await until(_figures_of(config), "metering after the takeover",
                lambda f: f["used"] > metered["used"], 120)  # fmt: skip
    assert await leader_gauge(standby_port) == 1.0
    assert (tmp_path / "second.log").read_text().count("Started accounting loop") == 1

    # A third replica stands by; the leader stopped with SIGTERM releases the Lease, so the
    # successor takes it without waiting out a silent holder (no transition from a holder).
    third_port = free_port()
    third = Operator(
        config, tmp_path / "third.log",
        "--webhook-port", str(free_port()), "--metrics-port", str(third_port),
    )  # fmt: skip
    await third.start(admitted=False)
    assert await second.stop(signal.SIGTERM) == 0
    handed = await until(lambda: lease(config), "a handover", held_by(third_port), 30)
    assert handed["spec"]["leaseTransitions"] == transitions + 1
    assert "Released the leader lease" in (tmp_path / "second.log").read_text()
    assert await third.stop(signal.SIGTERM) == 0


async def _figures(config: Path) -> dict[str, Any]:
    return {"used": await alice_used(config)}


def _figures_of(config: Path) -> Any:
    return lambda: _figures(config)
