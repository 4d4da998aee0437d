"""A real Prometheus (Debian's package) scrapes the playground through the file_sd list that
`sandboxer dev --prometheus-targets` writes; after ordinary use every dashboard query answers.
The chart's alert rules are loaded and must evaluate without errors. The answers are drawn as
a PNG (SANDBOXER_DASHBOARD_PNG=docs/dashboard.png writes the docs' one).

The use, through the real kubectl: alice runs a busy, an idle and a barely used sandbox, goes
over her concurrent-GPU limit once (a refusal); bob asks for more GPUs than any node has (a GPU
wait); the idle one is reclaimed. `make test` installs the package (Makefile: prometheus).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sandboxer.deploy.alerts import rules
from sandboxer.deploy.dashboard import queries
from sandboxer.deploy.dashboard_png import legend, render
from sandboxer.devcluster.operatorthread import free_port
from sandboxer.devcluster.playground import Playground
from tests.integration.conftest import ROOT, Kubectl, kubectl_runner
from tests.integration.test_playground_idle_budget import QUICK_CLASS, sandbox, wait

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="Debian's prometheus package is not installed (`make prometheus` installs it; "
    "`make test` runs that first)",
)


@pytest.fixture
async def observed_playground(tmp_path: Path) -> AsyncIterator[tuple[Playground, Path]]:
    targets = tmp_path / "targets.json"
    async with Playground(
        nodes=2,
        gpus_per_node=4,
        sample_interval=0.2,
        report_interval=0.5,
        ledger_dir=tmp_path / "ledger",
        loop_interval=0.5,
        kubeconfig=tmp_path / "playground.kubeconfig",
        examples=ROOT / "examples",
        prometheus_targets=targets,
    ) as pg:
        yield pg, targets


@pytest.fixture
async def prometheus(
    observed_playground: tuple[Playground, Path], tmp_path: Path
) -> AsyncIterator[str]:
    _, targets = observed_playground
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ROOT / "helm" / "sandboxer" / "files" / "alerts.yaml")],
            "scrape_configs": [{
                "job_name": "sandboxer",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
            }],
        })
    )  # fmt: skip
    check = await asyncio.create_subprocess_exec(
        "promtool", "check", "config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    said, _ = await check.communicate()
    assert check.returncode == 0, said.decode()
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    assert PROMETHEUS is not None
    proc = await asyncio.create_subprocess_exec(
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", stdout=log, stderr=log,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()
        log.close()


async def instant(http: aiohttp.ClientSession, url: str, expr: str) -> list[dict[str, Any]]:
    async with http.get(f"{url}/api/v1/query", params={"query": expr}) as resp:
        body = await resp.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def series_range(
    http: aiohttp.ClientSession, url: str, expr: str, start: float
) -> list[dict[str, Any]]:
    end = time.time()
    start = end - math.ceil(end - start)  # whole steps back from now, so `now` is a step too
    params = {"query": expr, "start": str(start), "end": str(end), "step": "1"}
    async with http.get(f"{url}/api/v1/query_range", params=params) as resp:
        body = await resp.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def answered(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


async def until(predicate: Any, within: float) -> None:
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110 - polling another process's HTTP API
            await asyncio.sleep(0.5)  # Prometheus scrapes once a second


async def test_every_dashboard_query_answers_after_ordinary_use(
    observed_playground: tuple[Playground, Path], prometheus: str, tmp_path: Path
) -> None:
    pg, targets = observed_playground
    groups = json.loads(targets.read_text())
    jobs = sorted(g["labels"]["job"] for g in groups)
    assert jobs == ["sandboxer-agent", "sandboxer-agent", "sandboxer-operator"]
    assert sorted(g["labels"].get("node", "") for g in groups) == ["", "gpu-node-0", "gpu-node-1"]
    kubectl: Kubectl = kubectl_runner(pg.kubeconfig_path, tmp_path / "kube-cache")
    async with aiohttp.ClientSession() as http:

        async def all_up() -> bool:
            try:
                up = await instant(http, prometheus, "up == 1")
            except aiohttp.ClientConnectionError:
                return False  # Prometheus still starting
            return len(up) == len(groups)

        await until(all_up, 60)
        started = time.time()

        await kubectl("apply", "-f", "-", input=QUICK_CLASS)
        await kubectl("apply", "-f", "-", user="alice", input=sandbox("busy", 80, "h100"))
        await kubectl("apply", "-f", "-", user="alice", input=sandbox("parked", 2, "h100"))
        await kubectl("apply", "-f", "-", user="alice", input=sandbox("idle", 0))
        await wait(kubectl, "--for=condition=Ready", "esb/busy", "esb/parked", "esb/idle")
        over = await kubectl(
            "apply", "-f", "-", user="alice", input=sandbox("more", 0, "h100", 8), check=False
        )
        assert over.rc != 0, "alice's 8 more GPUs should exceed her concurrency limit"
        await kubectl("apply", "-f", "-", user="bob", input=sandbox("huge", 0, "h100", 5))
        await wait(kubectl, "--for=condition=Scheduled=False", "esb/huge", user="bob")
        await wait(kubectl, "--for=jsonpath={.status.suspendedReason}=Idle", "esb/idle")

        pending = {(title, legend): expr for title, legend, expr in queries()}

        async def every_query_answers() -> bool:
            for key, expr in list(pending.items()):
                if answered(await instant(http, prometheus, expr)):
                    del pending[key]
            return not pending

        try:
            await until(every_query_answers, 90)
        except TimeoutError:
            pytest.fail(f"dashboard queries without data: {sorted(pending)}")

        # Spot checks on what the answers say.
        by_owner = {
            r["metric"]["owner"]: float(r["value"][1])
            for r in await instant(http, prometheus, dict(_by_title())["Busy share by person"])
        }
        assert 0 < by_owner["alice"] < 1
        refusals = await instant(
            http, prometheus, dict(_by_title())["Budget refusals by person (24h)"]
        )
        assert {r["metric"]["owner"] for r in refusals} == {"alice"}
        waits = await instant(
            http, prometheus, dict(_by_title())["Minutes waiting for GPUs by person (24h)"]
        )
        assert {r["metric"]["owner"] for r in waits} == {"bob"}
        reclaimed = await instant(
            http, prometheus, dict(_by_title())["Reclaimed GPU-hours by reason (7d)"]
        )
        assert {r["metric"]["reason"] for r in reclaimed} == {"Idle"}

        # The chart's alert rules evaluate against the real series without errors.
        async def rules_evaluated() -> list[dict[str, Any]]:
            async with http.get(f"{prometheus}/api/v1/rules") as resp:
                groups = (await resp.json())["data"]["groups"]
            return [r for g in groups for r in g["rules"]]

        async def every_rule_ran() -> bool:
            evaluated = await rules_evaluated()
            return bool(evaluated) and all(r["health"] != "unknown" for r in evaluated)

        await until(every_rule_ran, 30)
        loaded = await rules_evaluated()
        assert {r["name"] for r in loaded} == {r["alert"] for r in rules()["groups"][0]["rules"]}
        assert [r["lastError"] for r in loaded if r["health"] != "ok"] == []

        # The dashboard as a picture, from these answers (docs/install.md shows one).
        answers: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for title, template, expr in queries():
            for series in await series_range(http, prometheus, expr, started):
                name = legend(template, series["metric"])
                points = [(float(t), float(v)) for t, v in series["values"]]
                answers.setdefault(title, {})[name] = [p for p in points if math.isfinite(p[1])]
        png = render(answers, Path(os.environ.get("SANDBOXER_DASHBOARD_PNG", tmp_path / "d.png")))
        assert png.read_bytes().startswith(b"\x89PNG")
        assert set(answers) == {title for title, _, _ in queries()}


def _by_title() -> list[tuple[str, str]]:
    """Panel title -> its first query."""
    seen: dict[str, str] = {}
    for title, _, expr in queries():
        seen.setdefault(title, expr)
    return list(seen.items())
