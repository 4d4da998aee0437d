"""A playground node: the real agent loop over simulated NVML and a fake kubelet, reporting to
the embedded API over HTTPS, with utilization set per pod (as the sandbox annotation does)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from sandboxer.metering.podresources.model import PodAllocation, pods_from_map
from sandboxer.metering.publisher import KubeHTTP, NodePods, NodeReportPublisher
from sandboxer.metering.simnode import SimulatedNode
from tests.integration.metering_api import kube_http, put_pod, report, reports_cluster


async def test_simulated_node_reports_per_pod_utilization() -> None:
    async with reports_cluster() as cluster:
        put_pod(cluster, "alice-nb-0", "uid-alice", node="sim-1")
        http = kube_http(cluster)
        status, uuids = await _run_node(http, lambda: report(cluster, "sim-1"))
    (alice,) = status["pods"]
    assert alice["uid"] == "uid-alice"
    gpu = alice["gpus"][0]
    assert gpu["uuid"] == uuids[0]
    assert gpu["busySeconds"] == pytest.approx(gpu["allocatedSeconds"] * 0.8, abs=0.01)
    assert {g["uuid"]: g.get("utilizationPercent") for g in status["gpus"]} == {
        uuids[0]: 80.0,
        uuids[1]: 0.0,
    }


async def _run_node(
    http: KubeHTTP, stored: Callable[[], dict[str, Any] | None]
) -> tuple[dict[str, Any], list[str]]:
    """Run sim-1 with alice's pod on its first GPU until a report shows her busy time."""
    allocations: list[PodAllocation] = []
    busy = {("team", "alice-nb-0"): 80.0}
    with tempfile.TemporaryDirectory(prefix="sim-") as tmp:
        node = SimulatedNode(
            "sim-1",
            socket_path=f"{tmp}/kubelet.sock",
            allocations=lambda: allocations,
            pod_utilization=lambda ns, name: busy.get((ns, name)),
            publisher=NodeReportPublisher(http, "sim-1"),
            pod_uids=NodePods(http, "sim-1"),
            gpus=2,
            sample_interval=0.02,
            report_interval=0.04,
        )
        allocations[:] = pods_from_map(
            {("team", "alice-nb-0"): {"nvidia.com/gpu": node.gpu_uuids[:1]}}
        )
        await node.start()
        try:
            async with asyncio.timeout(10):
                while True:  # until a report shows busy time for alice
                    obj = stored() or {}
                    pods = obj.get("status", {}).get("pods", [])
                    if pods and pods[0]["gpus"][0].get("busySeconds", 0) > 0:
                        break
                    await asyncio.sleep(0.01)
        finally:
            await node.stop()
            await http.close()
    return (stored() or {})["status"], list(node.gpu_uuids)
