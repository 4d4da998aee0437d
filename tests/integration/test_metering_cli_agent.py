"""`sandboxer agent --backend simulated` as a real process: kubeconfig, kubelet socket, /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sandboxer.metering.podresources.fake_kubelet import FakeKubelet
from sandboxer.metering.podresources.model import pods_from_map
from sandboxer.metering.simulated import make_gpus
from tests.integration.kmock_reports import REPORTS, declare


async def test_agent_command_publishes_and_serves_metrics(
    kmock: Any, tmp_path: Path, unused_tcp_port: int, repo_root: Path
) -> None:
    declare(kmock)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": "agent"}}],
        "clusters": [{"name": "dev", "cluster": {"server": str(kmock.url)}}],
        "users": [{"name": "agent", "user": {"token": "agent-token"}}],
    }))  # fmt: skip
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
                    try:
                        status = dict(kmock.objects[REPORTS, None, "cli-node"]).get("status", {})
                    except KeyError:
                        status = {}
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
    assert healthz == 200
    assert [p["name"] for p in status["pods"]] == ["nb-0"]
    assert len(status["gpus"]) == 2
    assert "sandboxer_gpu_allocated_seconds_total" in metrics
    requests = [r for r in kmock if r.method.value == "PATCH"]
    assert requests[0].headers["Authorization"] == "Bearer agent-token"
    assert b"agent-token" not in stderr  # never logged
    lines = [json.loads(line) for line in stderr.decode().splitlines()]  # one JSON object each
    assert lines and all(isinstance(line, dict) and line["level"] for line in lines)
