"""A playground node: the real agent loop over simulated NVML and a fake kubelet, reporting to
kmock over HTTP, with utilization set per pod (as the sandbox annotation does)."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import pytest

from sandboxer.metering.kubeconfig import KubeEndpoint
from sandboxer.metering.podresources.model import PodAllocation, pods_from_map
from sandboxer.metering.publisher import KubeHTTP, NodePods, NodeReportPublisher
from sandboxer.metering.simnode import SimulatedNode
from tests.integration.kmock_reports import REPORTS, declare


async def test_simulated_node_reports_per_pod_utilization(kmock: Any) -> None:
    declare(kmock)
    kmock.objects["v1/pods", "team", "alice-nb-0"] = {
        "apiVersion": "v1", "kind": "Pod", "spec": {"nodeName": "sim-1"},
        "metadata": {"name": "alice-nb-0", "namespace": "team", "uid": "uid-alice"},
    }  # fmt: skip
    http = KubeHTTP(KubeEndpoint(str(kmock.url).rstrip("/")))
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
                    try:
                        obj = dict(kmock.objects[REPORTS, None, "sim-1"])
                    except KeyError:  # not created yet
                        obj = {}
                    pods = obj.get("status", {}).get("pods", [])
                    if pods and pods[0]["gpus"][0].get("busySeconds", 0) > 0:
                        break
                    await asyncio.sleep(0.01)
        finally:
            await node.stop()
            await http.close()
    status = kmock.objects[REPORTS, None, "sim-1"]["status"]
    (alice,) = status["pods"]
    assert alice["uid"] == "uid-alice"
    gpu = alice["gpus"][0]
    assert gpu["uuid"] == node.gpu_uuids[0]
    assert gpu["busySeconds"] == pytest.approx(gpu["allocatedSeconds"] * 0.8, abs=0.01)
    assert {g["uuid"]: g.get("utilizationPercent") for g in status["gpus"]} == {
        node.gpu_uuids[0]: 80.0,
        node.gpu_uuids[1]: 0.0,
    }
