"""Reusable fixtures: a running dev cluster, its kubeconfig, and a real-kubectl runner."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from sandboxer.devcluster.binaries import kubectl as kubectl_binary
from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.playground import Playground

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Kubectl(Protocol):
    def __call__(
        self, *args: str, user: str = "admin", input: str | None = None, check: bool = True
    ) -> Awaitable[Result]: ...


@contextlib.asynccontextmanager
async def two_node_cluster() -> AsyncIterator[DevCluster]:
    """Embedded API with the project's CRDs and two simulated nodes of 4 H100 GPUs each."""
    async with DevCluster() as cluster:
        cluster.load_crds(ROOT / "crds")
        cluster.add_gpu_node("gpu-node-0", gpus=4, model="H100")
        cluster.add_gpu_node("gpu-node-1", gpus=4, model="H100")
        yield cluster


@pytest.fixture
async def devcluster() -> AsyncIterator[DevCluster]:
    async with two_node_cluster() as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(devcluster: DevCluster, tmp_path: Path) -> Path:
    return devcluster.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return kubectl_runner(kubeconfig, tmp_path / "kube-cache")


@pytest.fixture
async def playground(tmp_path: Path) -> AsyncIterator[Playground]:
    """The whole playground (two 4-GPU H100 nodes, operator, agents) with short intervals."""
    async with Playground(
        nodes=2,
        gpus_per_node=4,
        sample_interval=0.2,
        report_interval=0.5,
        ledger_dir=tmp_path / "ledger",
        loop_interval=0.5,
        kubeconfig=tmp_path / "playground.kubeconfig",
        examples=ROOT / "examples",
    ) as pg:
        yield pg


@pytest.fixture
def pg_kubectl(playground: Playground, tmp_path: Path) -> Kubectl:
    """The real kubectl against the playground."""
    return kubectl_runner(playground.kubeconfig_path, tmp_path / "kube-cache")


def kubectl_runner(kubeconfig: Path, cache: Path) -> Kubectl:
    """Run the real kubectl without blocking the loop the cluster serves on."""
    binary = str(kubectl_binary())

    async def run(
        *args: str, user: str = "admin", input: str | None = None, check: bool = True
    ) -> Result:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(cache),
            "--context",  # the user's context: its namespace is the user's home namespace
            user,
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            proc.communicate(input.encode() if input is not None else None), timeout=60
        )
        result = Result(proc.returncode or 0, out.decode(), err.decode())
        if check and result.rc != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.rc}): {result.stderr}")
        return result

    return run


async def eventually(
    predicate: Callable[[], bool], within: float = 10.0, message: str = "condition"
) -> None:
    """Wait for an in-process condition, yielding to the loop between checks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {message}")
        await asyncio.sleep(0.01)
