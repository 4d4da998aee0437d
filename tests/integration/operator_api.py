"""Shared pieces of the handler and webhook tests on the embedded API: a cluster with the
project's CRDs, a team namespace and the h100 class; a small HTTP client (kubectl's part);
condition polling; and the real operator in its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import yaml

from sandboxer.controller.config import OperatorConfig
from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.operatorthread import OperatorThread, playground_config
from tests.integration.conftest import ROOT, two_node_cluster

NS = "team-a"
ESB = "/apis/sandboxer.io/v1alpha1"
STS = f"/apis/apps/v1/namespaces/{NS}/statefulsets"
PODS = f"/api/v1/namespaces/{NS}/pods"
PVCS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"


@contextlib.asynccontextmanager
async def team_cluster() -> AsyncIterator[DevCluster]:
    """Two 4-GPU H100 nodes, the CRDs, namespace team-a and the example h100 class."""
    async with two_node_cluster() as cluster:
        await cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        await cluster.apply(yaml.safe_load((ROOT / "examples" / "class-h100.yaml").read_text()))
        yield cluster


class Api:
    """The test's own HTTP client to the embedded API as admin (kubectl's part)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(self, path: str, body: dict[str, Any]) -> int:
        async with self.session.post(path, json=body) as resp:
            return resp.status

    async def patch(self, path: str, body: dict[str, Any]) -> int:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.session.patch(path, json=body, headers=headers) as resp:
            return resp.status

    async def get(self, path: str) -> Any:
        async with self.session.get(path) as resp:
            return await resp.json() if resp.status == 200 else None


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll an async condition until it returns something truthy, or fail after `within` s.

    Polls the API over HTTP, as `kubectl wait` does.
    """
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110 - polls a remote API
            await asyncio.sleep(0.05)
        return result


def operator_config(cluster: DevCluster, *, webhooks: bool, **changes: Any) -> OperatorConfig:
    """The playground's operator settings (its service account, the cluster's CA) with changes."""
    config = playground_config(cluster, webhooks=webhooks)
    return dataclasses.replace(config, **changes)


@contextlib.asynccontextmanager
async def running_operator(config: OperatorConfig) -> AsyncIterator[None]:
    """The real operator in its own thread and loop, beside the cluster's loop."""
    thread = OperatorThread(config)
    await thread.start()
    try:
        yield
    finally:
        await thread.stop()
