"""`sandboxer operator` as a process writes one JSON object per line: its own lines, kopf's (with
the object they are about) and aiohttp's, and liveness probes only at DEBUG."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandboxer.devcluster.cluster import DevCluster
from tests.integration.conftest import ROOT, Kubectl, eventually

SANDBOX = {
    "apiVersion": "sandboxer.io/v1alpha1",
    "kind": "ExperimentSandbox",
    # As admission would have stored it (no webhooks run here): the owner and their groups.
    "metadata": {
        "name": "log-nb",
        "namespace": "default",
        "annotations": {"sandboxer.io/owner-groups": ""},
    },
    "spec": {"class": "h100", "gpus": 1, "owner": "alice"},
}


async def _operator_lines(
    devcluster: DevCluster, kubectl: Kubectl, tmp_path: Path, port: int, level: str
) -> list[dict[str, Any]]:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "operator.kubeconfig")
    env = os.environ | {"KUBECONFIG": str(kubeconfig), "SANDBOXER_LOG_LEVEL": level}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    log = tmp_path / f"operator-{level}.log"
    await kubectl("apply", "-f", str(ROOT / "examples" / "class-h100.yaml"))
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from sandboxer.cli import main; main()", "operator",
            "--liveness", f"http://127.0.0.1:{port}/healthz",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        await kubectl("apply", "-f", "-", input=json.dumps(SANDBOX))
        async with aiohttp.ClientSession() as http:
            probes = 0

            async def probe() -> bool:
                nonlocal probes
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        probes += resp.status == 200
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                return probes >= 3

            async with asyncio.timeout(30):
                while not await probe():  # noqa: ASYNC110 - polling the process's endpoint
                    await asyncio.sleep(0.1)

        def sandbox_handled() -> bool:
            return "log-nb" in log.read_text() and "StatefulSet" in log.read_text()

        await eventually(sandbox_handled, within=30, message="the operator's lines on log-nb")
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pytest.fail(f"not one JSON object: {raw!r}")
    return lines


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_every_operator_line_is_one_json_object(
    devcluster: DevCluster, kubectl: Kubectl, tmp_path: Path, unused_tcp_port: int, level: str
) -> None:
    lines = await _operator_lines(devcluster, kubectl, tmp_path, unused_tcp_port, level)
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    kopf = [line for line in lines if str(line.get("logger", "")).startswith("kopf")]
    assert kopf, "no kopf line"
    about_sandbox = [line for line in kopf if line.get("object", {}).get("name") == "log-nb"]
    assert about_sandbox, "kopf's per-object lines carry the object"
    assert about_sandbox[0]["object"] | {"namespace": "default"} == about_sandbox[0]["object"]
    assert about_sandbox[0]["object"]["kind"] == "ExperimentSandbox"
    probes = [line for line in lines if "/healthz" in str(line.get("request", ""))]
    if level == "INFO":
        assert probes == []
    else:
        assert probes and {p["level"] for p in probes} == {"debug"}
        assert probes[0]["status"] == 200
