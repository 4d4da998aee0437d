"""`sandboxer agent --backend simulated` as a real process: kubeconfig, kubelet socket, /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from sandboxer.devcluster.auth import AGENT_USER, SERVICE_ACCOUNT_GROUPS
from sandboxer.metering.podresources.fake_kubelet import FakeKubelet
from sandboxer.metering.podresources.model import pods_from_map
from sandboxer.metering.simulated import make_gpus
from tests.integration.metering_api import report, reports_cluster

AGENT = AGENT_USER  # the chart's agent service account, bound to the chart's agent role


async def test_agent_command_publishes_and_serves_metrics(
    tmp_path: Path, unused_tcp_port: int, repo_root: Path
) -> None:
    async with reports_cluster() as cluster:
        token = cluster.add_user(AGENT, (*SERVICE_ACCOUNT_GROUPS, "system:authenticated"))
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", user=AGENT)
        status, metrics, healthz, stderr = await _run_agent(
            lambda: (report(cluster, "cli-node") or {}).get("status", {}),
            kubeconfig, tmp_path, unused_tcp_port, repo_root,
        )  # fmt: skip
        patches = [r for r in cluster.http.log if r.method == "PATCH"]
    assert healthz == 200
    assert [p["name"] for p in status["pods"]] == ["nb-0"]
    assert len(status["gpus"]) == 2
    assert "sandboxer_gpu_allocated_seconds_total" in metrics
    assert patches and {r.user for r in patches} == {AGENT}  # the kubeconfig's token
    assert token.encode() not in stderr  # never logged
    lines = [json.loads(line) for line in stderr.decode().splitlines()]  # one JSON object each
    assert lines and all(isinstance(line, dict) and line["level"] for line in lines)


async def _run_agent(
    stored: Callable[[], dict[str, Any]],
    kubeconfig: Path,
    tmp_path: Path,
    unused_tcp_port: int,
    repo_root: Path,
) -> tuple[dict[str, Any], str, int, bytes]:
    gpu = make_gpus(1, node="cli-node")[0].uuid  # the simulated backend's first GPU
    kubelet = FakeKubelet(pods_from_map({("team", "nb-0"): {"nvidia.com/gpu": [gpu]}}))
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        await kubelet.start(f"{tmp}/kubelet.sock")
        # Settings through the variables the chart's DaemonSet sets (durations as it writes them).
        env = os.environ | {
            "NODE_NAME": "cli-node",
            "SANDBOXER_PODRESOURCES_SOCKET": f"{tmp}/kubelet.sock",
            "SANDBOXER_SAMPLE_INTERVAL": "100ms",
            "SANDBOXER_REPORT_INTERVAL": "0.2s",
            "SANDBOXER_METRICS_PORT": str(unused_tcp_port),
            "SANDBOXER_PROC_ROOT": str(tmp_path),
            "SANDBOXER_LOG_FORMAT": "json",
            "SANDBOXER_LOG_LEVEL": "INFO",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from sandboxer.cli import main; main()",
            "agent", "--kubeconfig", str(kubeconfig), "--backend", "simulated", "--sim-gpus", "2",
            cwd=repo_root, env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with asyncio.timeout(30):
                while True:
                    status = stored()
                    if status.get("sequence", 0) >= 2:
                        break
                    assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                    await asyncio.sleep(0.05)
                async with aiohttp.ClientSession() as http:
                    url = f"http://127.0.0.1:{unused_tcp_port}"
                    metrics = await (await http.get(f"{url}/metrics")).text()
                    healthz = (await http.get(f"{url}/healthz")).status
        finally:
            if process.returncode is None:
                process.terminate()
            _, stderr = await process.communicate()
            await kubelet.stop()
    return status, metrics, healthz, stderr
