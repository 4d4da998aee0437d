"""`sandboxer dev` serves the playground until interrupted, and its kubeconfig works."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp

from sandboxer.devcluster.binaries import kubectl

ROOT = Path(__file__).resolve().parents[2]


async def test_sandboxer_dev_serves_nodes_and_prints_usage(tmp_path: Path) -> None:
    config = tmp_path / "dev.kubeconfig"
    # The operator and agents log to stderr: a file, so a full pipe never blocks them.
    log = (tmp_path / "dev.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "from sandboxer.cli import main; main()",
        "dev", "--kubeconfig", str(config), "--nodes", "3", "--gpus-per-node", "2",
        "--gpu-model", "A100", "--ledger", str(tmp_path / "ledger"),
        "--sample-interval", "0.2", "--report-interval", "0.5",
        "--prometheus-targets", str(tmp_path / "targets.json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )  # fmt: skip
    log.close()
    assert proc.stdout is not None
    try:
        lines = []
        while not any("Press Ctrl-C" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert line, "sandboxer dev exited early"
            lines.append(line.decode())
        text = "".join(lines)
        assert f"--kubeconfig {config} --context alice apply -f examples/sandbox.yaml" in text
        assert config.stat().st_mode & 0o077 == 0  # tokens inside: owner-only

        get = await asyncio.create_subprocess_exec(
            str(kubectl()), "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "c"),
            "get", "nodes", "-l", "nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB", "-o", "name",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(get.communicate(), timeout=60)
        assert out.decode().split() == [f"node/gpu-node-{i}" for i in range(3)]

        # The operator's webhooks stamp the owner; the agents publish one report per node.
        assert await run_kubectl(config, tmp_path, "--context", "alice", "apply", "-f",
                                 str(ROOT / "examples" / "sandbox.yaml"))  # fmt: skip
        owner = await run_kubectl(config, tmp_path, "--context", "alice", "get", "esb",
                                  "my-notebook", "-o", "jsonpath={.spec.owner}")  # fmt: skip
        assert owner == "alice"
        for i in range(3):
            await run_kubectl(config, tmp_path, "wait", "--for=create", "--timeout=20s",
                              f"gpunodereport/gpu-node-{i}")  # fmt: skip
        reports = await run_kubectl(config, tmp_path, "get", "gpunodereports", "-o", "name")
        assert reports.split() == [f"gpunodereport.sandboxer.io/gpu-node-{i}" for i in range(3)]

        # Every /metrics endpoint of the playground, in Prometheus' file_sd form.
        groups = json.loads((tmp_path / "targets.json").read_text())
        assert [g["labels"].get("node") for g in groups] == [
            None,
            *(f"gpu-node-{i}" for i in range(3)),
        ]
        async with aiohttp.ClientSession() as http:
            for group in groups:
                (target,) = group["targets"]
                async with http.get(f"http://{target}/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
                wanted = (
                    "sandboxer_sandbox_info"
                    if "node" not in group["labels"]
                    else ("sandboxer_agent_last_report_timestamp_seconds")
                )
                assert wanted in text, (group, text[:500])
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    assert "Stopped the dev cluster." in rest.decode()


async def run_kubectl(config: Path, tmp_path: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(kubectl()), "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "c"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()
