"""Simulated scheduler in-process: MIG slices, taints, allocation hooks, frees on delete."""

from __future__ import annotations

from typing import Any

from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.scheduler import Allocation
from tests.integration.conftest import eventually

TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def pod(name: str, resource: str, count: int, tolerate: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "image": "i", "resources": {"limits": {resource: str(count)}}}]
    }
    if tolerate:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def phase(cluster: DevCluster, name: str) -> str:
    obj = cluster.get("v1", "Pod", name, "default") or {}
    return str((obj.get("status") or {}).get("phase", ""))


async def test_mig_slices_taints_and_allocation_hooks() -> None:
    changes: list[tuple[str, dict[str, Allocation]]] = []
    async with DevCluster() as cluster:
        node = cluster.add_gpu_node(
            "mig-0", gpus=1, model="H100", mig_profile="1g.10gb", taints=(TAINT,)
        )
        assert node["status"]["allocatable"]["nvidia.com/mig-1g.10gb"] == "7"
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
        cluster.on_allocation_change(lambda name, allocs: changes.append((name, allocs)))

        await cluster.apply(pod("untolerated", "nvidia.com/mig-1g.10gb", 1, tolerate=False))
        await cluster.apply(pod("slices", "nvidia.com/mig-1g.10gb", 2))
        await eventually(lambda: phase(cluster, "slices") == "Running", message="pod bound")
        await eventually(lambda: phase(cluster, "untolerated") == "Pending", message="pending")

        pending = cluster.get("v1", "Pod", "untolerated", "default") or {}
        message = pending["status"]["conditions"][0]["message"]
        assert message == (
            "0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}."
        )
        bound = cluster.get("v1", "Pod", "slices", "default") or {}
        held = cluster.allocations("mig-0")[bound["metadata"]["uid"]]
        resource, ids = held.devices[0]
        assert resource == "nvidia.com/mig-1g.10gb"
        assert len(ids) == 2
        assert all(i.startswith("MIG-") for i in ids)
        assert changes[-1][0] == "mig-0"

        rt = cluster.resource("v1", "Pod")
        await cluster.apiserver.delete(rt, "default", "slices")
        assert cluster.allocations("mig-0") == {}
        assert changes[-1] == ("mig-0", {})


async def test_freed_gpus_let_a_pending_pod_run() -> None:
    async with DevCluster() as cluster:
        cluster.add_gpu_node("gpu-0", gpus=2, model="A100")
        await cluster.apply(pod("first", "nvidia.com/gpu", 2))
        await eventually(lambda: phase(cluster, "first") == "Running", message="first runs")
        await cluster.apply(pod("second", "nvidia.com/gpu", 1))
        await eventually(lambda: phase(cluster, "second") == "Pending", message="second waits")
        await cluster.apiserver.delete(cluster.resource("v1", "Pod"), "default", "first")
        await eventually(lambda: phase(cluster, "second") == "Running", message="second runs")


async def test_containers_start_a_while_after_binding() -> None:
    async with DevCluster(container_start=0.2) as cluster:
        cluster.add_gpu_node("n0", gpus=1, model="H100")
        await cluster.apply(pod("nb", "nvidia.com/gpu", 1))
        await eventually(lambda: bool(node_of(cluster, "nb")), message="pod bound")
        bound = cluster.get("v1", "Pod", "nb", "default") or {}
        conditions = {c["type"]: c["status"] for c in bound["status"]["conditions"]}
        assert bound["status"]["phase"] == "Pending"
        assert conditions["PodScheduled"] == "True" and conditions["Ready"] == "False"
        waiting = bound["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ContainerCreating"
        assert cluster.allocations("n0")  # the devices are held from binding on
        await eventually(lambda: phase(cluster, "nb") == "Running", message="containers run")
        running = cluster.get("v1", "Pod", "nb", "default") or {}
        assert running["status"]["podIP"]


def node_of(cluster: DevCluster, name: str) -> str | None:
    obj = cluster.get("v1", "Pod", name, "default") or {}
    return (obj.get("spec") or {}).get("nodeName")
