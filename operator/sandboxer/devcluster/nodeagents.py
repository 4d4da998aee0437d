"""The playground's node agents: one `SimulatedNode` (real agent, simulated NVML and kubelet) per
simulated GPU node, seeing exactly the devices the dev cluster's scheduler handed out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from sandboxer.api.kinds import EXPERIMENT_SANDBOX
from sandboxer.devcluster.auth import AGENT_USER, SERVICE_ACCOUNT_GROUPS
from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.nodes import NodeSpec, product
from sandboxer.devcluster.operatorthread import free_port
from sandboxer.devcluster.scheduler import PODS, Allocation
from sandboxer.devcluster.store import ResKey
from sandboxer.manifests.labels import SANDBOX_LABEL
from sandboxer.metering.kubeconfig import KubeEndpoint
from sandboxer.metering.podresources.model import (
    ContainerAllocation,
    DeviceAllocation,
    PodAllocation,
)
from sandboxer.metering.publisher import KubeHTTP, NodePods, NodeReportPublisher
from sandboxer.metering.simnode import SimulatedNode
from sandboxer.metering.simulated import SimGPU, SimMIG

UTILIZATION_ANNOTATION = "sim.sandboxer.io/gpu-utilization"
SANDBOXES: ResKey = (
    EXPERIMENT_SANDBOX.group,
    EXPERIMENT_SANDBOX.version,
    EXPERIMENT_SANDBOX.plural,
)


def simulated_gpus(spec: NodeSpec) -> list[SimGPU]:
    """NVML's view of a node: the same GPU and MIG UUIDs the scheduler allocates from."""
    model = product(spec.model).replace("-", " ")  # "NVIDIA H100 80GB HBM3", as NVML names it
    return [
        SimGPU(
            uuid=uuid,
            index=index,
            model=model,
            migs=[SimMIG(uuid=mig, profile=spec.mig_profile or "") for mig in spec.mig_uuids(uuid)],
        )
        for index, uuid in enumerate(spec.gpu_uuids())
    ]


def pod_allocation(allocation: Allocation) -> PodAllocation:
    """The scheduler's record as the kubelet's PodResources API reports it (one container)."""
    devices = tuple(DeviceAllocation(resource, ids) for resource, ids in allocation.devices)
    return PodAllocation(
        namespace=allocation.namespace,
        name=allocation.name,
        containers=(ContainerAllocation(name="notebook", devices=devices),),
    )


def parse_percent(raw: object) -> float | None:
    """The annotation's value as a percentage; anything unreadable counts as unset."""
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return min(max(value, 0.0), 100.0)


def sandbox_utilization(cluster: DevCluster, namespace: str, pod: str) -> float | None:
    """Utilization asked for by the pod's sandbox annotation (None: not set, so idle)."""
    store = cluster.apiserver.store
    obj = store.get(PODS, namespace, pod)
    sandbox = ((obj or {}).get("metadata", {}).get("labels") or {}).get(SANDBOX_LABEL)
    if not sandbox:
        return None
    esb = store.get(SANDBOXES, namespace, sandbox)
    annotations = ((esb or {}).get("metadata") or {}).get("annotations") or {}
    return (
        parse_percent(annotations[UTILIZATION_ANNOTATION])
        if UTILIZATION_ANNOTATION in annotations
        else None
    )


class NodeAgents:
    """Starts and stops one simulated node agent per simulated GPU node of a cluster."""

    def __init__(
        self,
        cluster: DevCluster,
        sockets: Path,
        *,
        sample_interval: float,
        report_interval: float,
    ) -> None:
        self.cluster = cluster
        self.sockets = sockets
        self.sample_interval, self.report_interval = sample_interval, report_interval
        self.nodes: dict[str, SimulatedNode] = {}
        self._http: KubeHTTP | None = None

    async def start(self) -> None:
        cluster = self.cluster
        token = cluster.add_user(AGENT_USER, (*SERVICE_ACCOUNT_GROUPS, "system:authenticated"))
        endpoint = KubeEndpoint(cluster.url, cluster.tls.client_context(), token=token)
        self._http = http = KubeHTTP(endpoint)
        for name, spec in cluster.node_specs.items():
            node = SimulatedNode(
                name,
                socket_path=self.sockets / f"{name}.sock",
                allocations=self._allocations_of(name),
                pod_utilization=lambda ns, pod: sandbox_utilization(cluster, ns, pod),
                publisher=NodeReportPublisher(http, name),
                pod_uids=NodePods(http, name),
                gpus=simulated_gpus(spec),
                sample_interval=self.sample_interval,
                report_interval=self.report_interval,
                metrics_port=free_port(),
            )
            await node.start()
            self.nodes[name] = node

    def _allocations_of(self, node: str) -> Callable[[], list[PodAllocation]]:
        return lambda: [pod_allocation(a) for a in self.cluster.allocations(node).values()]

    async def stop(self) -> None:
        for node in self.nodes.values():
            with contextlib.suppress(Exception):  # stopping is best effort; the loop goes on
                await node.stop()
        self.nodes.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
