"""Shared by the provisioning and time-to-notebook benchmarks: sandboxes applied in-process as
`alice` (through admission, so the operator's webhooks run), and Ready times seen by a store
listener (no polling, no extra API requests)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.nodeagents import SANDBOXES

GPUS_PER_NODE = 8


def quiet_api_server() -> None:
    """The embedded API's access log is the test bench's cost, not the operator's."""
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def nodes_for(sandboxes: int) -> int:
    """Enough 8-GPU nodes for one GPU per sandbox."""
    return max(1, math.ceil(sandboxes / GPUS_PER_NODE))


def sandbox(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": f"nb-{i:05d}", "namespace": "default"},
        "spec": {"class": "h100", "gpus": 1},
    }


def is_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class ReadyClock:
    """When each sandbox was applied and when it first turned Ready."""

    def __init__(self, cluster: DevCluster, expected: int) -> None:
        self.applied: dict[str, float] = {}
        self.admitted: dict[str, float] = {}  # when the API answered the apply
        self.ready: dict[str, float] = {}
        self.expected = expected
        self.all_ready = asyncio.Event()
        cluster.apiserver.store.listeners.append(self._on_event)

    def _on_event(self, kind: str, res: Any, obj: dict[str, Any], old: Any) -> None:
        if res != SANDBOXES or kind == "DELETED":
            return
        name = obj["metadata"]["name"]
        if name not in self.ready and is_ready(obj):
            self.ready[name] = time.perf_counter()
            if len(self.ready) >= self.expected:
                self.all_ready.set()

    def seconds_to_admit(self) -> list[float]:
        return sorted(self.admitted[n] - self.applied[n] for n in self.admitted)

    def seconds_to_ready(self) -> list[float]:
        return sorted(self.ready[n] - self.applied[n] for n in self.ready if n in self.applied)


async def apply_all(cluster: DevCluster, clock: ReadyClock, count: int) -> None:
    """Apply `count` sandboxes at once, as alice."""

    async def one(i: int) -> None:
        obj = sandbox(i)
        clock.applied[obj["metadata"]["name"]] = time.perf_counter()
        await cluster.apply(obj, user="alice")
        clock.admitted[obj["metadata"]["name"]] = time.perf_counter()

    await asyncio.gather(*(one(i) for i in range(count)))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[rank - 1]


def operator_requests(cluster: DevCluster) -> dict[tuple[str, str], int]:
    """Snapshot of the API's request counters (only the operator talks HTTP in these runs)."""
    return dict(cluster.http.requests)


def run_cli(
    bench: Callable[[int], Awaitable[dict[str, Any]]], unit_metric: str, doc: str | None
) -> None:
    """`--size N`, run, and print the harness's result line (unit cost: ms per sandbox)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    quiet_api_server()
    metrics = asyncio.run(bench(args.size))
    unit = metrics[unit_metric] * 1000 / args.size
    print(json.dumps({"metrics": metrics, "unit_cost": round(unit, 3)}))
