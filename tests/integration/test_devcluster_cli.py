"""`sandboxer dev` serves the playground until interrupted, and its kubeconfig works."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from sandboxer.devcluster.binaries import kubectl


async def test_sandboxer_dev_serves_nodes_and_prints_usage(tmp_path: Path) -> None:
    config = tmp_path / "dev.kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "from sandboxer.cli import main; main()",
        "dev", "--kubeconfig", str(config), "--nodes", "3", "--gpus-per-node", "2",
        "--gpu-model", "A100", "--ledger", str(tmp_path / "ledger"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = []
        while not any("Press Ctrl-C" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert line, "sandboxer dev exited early"
            lines.append(line.decode())
        text = "".join(lines)
        assert f"--kubeconfig {config} --user alice apply -f examples/sandbox.yaml" in text
        assert config.stat().st_mode & 0o077 == 0  # tokens inside: owner-only

        get = await asyncio.create_subprocess_exec(
            str(kubectl()), "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "c"),
            "get", "nodes", "-l", "nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB", "-o", "name",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(get.communicate(), timeout=60)
        assert out.decode().split() == [f"node/gpu-node-{i}" for i in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    assert "Stopped the dev cluster." in rest.decode()
