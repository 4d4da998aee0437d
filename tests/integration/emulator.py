"""Shared pieces of the integration tests on kmock's KubernetesEmulator: resource declarations,
a small HTTP client (kubectl's part), condition polling, and the operator in its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import kmock

from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.runner import run_operator

NS = "team-a"
ESB = "/apis/sandboxer.io/v1alpha1"
STS = f"/apis/apps/v1/namespaces/{NS}/statefulsets"
PODS = f"/api/v1/namespaces/{NS}/pods"
PVCS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
CREATED = (200, 201)  # kmock answers 200, the API server 201


def declare(emulator: kmock.KubernetesEmulator) -> None:
    emulator.resources.load_bundled()  # the built-in kinds of a recent cluster
    emulator.resources["sandboxer.io/v1alpha1/experimentsandboxes"] = kmock.ResourceInfo(
        kind="ExperimentSandbox",
        namespaced=True,
        singular="experimentsandbox",
        verbs={"get", "list", "watch", "create", "patch", "delete"},
        subresources={"status"},
    )
    emulator.resources["sandboxer.io/v1alpha1/sandboxclasses"] = kmock.ResourceInfo(
        kind="SandboxClass",
        namespaced=False,
        singular="sandboxclass",
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )


class Api:
    """The test's own HTTP client to the emulator (kubectl's part)."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base.rstrip("/"), session

    async def post(self, path: str, body: dict[str, Any]) -> int:
        async with self.session.post(self.base + path, json=body) as resp:
            return resp.status

    async def patch(self, path: str, body: dict[str, Any]) -> int:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.session.patch(self.base + path, json=body, headers=headers) as resp:
            return resp.status

    async def get(self, path: str) -> Any:
        async with self.session.get(self.base + path) as resp:
            return await resp.json() if resp.status == 200 else None


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll an async condition until it returns something truthy, or fail after `within` s.

    Polls the API over HTTP, as `kubectl wait` does: the emulator has no other signal.
    """
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110 - polls a remote API
            await asyncio.sleep(0.05)
        return result


@contextlib.asynccontextmanager
async def run_operator_thread(config: OperatorConfig) -> AsyncIterator[None]:
    """The operator in its own thread and loop, as KopfRunner runs it, beside the emulator."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(run_operator(config, stop_flag=stop, ready_flag=ready))
    )
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, 10), "the operator did not start in 10 s"
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive(), "the operator did not stop in 10 s"
