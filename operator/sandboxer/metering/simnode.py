"""A playground GPU node: simulated NVML + a fake kubelet on a unix socket + the real agent.

`sandboxer dev` starts one per simulated node, so the playground exercises the same agent code
path as production (gRPC PodResources client, cgroup lookup, counters, report publishing); only
the GPUs and the kubelet are simulated. The playground decides which pod holds which GPU
(`allocations`) and how busy each pod is (`pod_utilization`, e.g. from the sandbox annotation
`sim.sandboxer.io/gpu-utilization`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from sandboxer.metering.agent import Agent, AgentConfig, PodDirectory, Publisher
from sandboxer.metering.podresources.client import PodResourcesClient
from sandboxer.metering.podresources.fake_kubelet import FakeKubelet
from sandboxer.metering.podresources.model import PodAllocation, devices_by_holder
from sandboxer.metering.simulated import SimGPU, SimulatedNVML, UtilizationSource, make_gpus

PodUtilization = Callable[[str, str], float | None]  # (namespace, pod name) -> percent


def pod_utilization_source(
    holders: Callable[[], Mapping[str, tuple[str, str]]], per_pod: PodUtilization
) -> UtilizationSource:
    """Device UUID -> the utilization set for the pod that holds the device (0 when free)."""

    def source(uuid: str) -> float | None:
        holder = holders().get(uuid)
        return per_pod(*holder) if holder is not None else 0.0

    return source


class SimulatedNode:
    def __init__(
        self,
        node: str,
        *,
        socket_path: str | Path,
        allocations: Callable[[], Iterable[PodAllocation]],
        pod_utilization: PodUtilization,
        publisher: Publisher,
        pod_uids: PodDirectory | None = None,
        gpus: int | Sequence[SimGPU] = 8,
        model: str = "NVIDIA H100 80GB HBM3",
        migs_per_gpu: int = 0,
        sample_interval: float = 10.0,
        report_interval: float = 30.0,
        metrics_port: int | None = None,
    ) -> None:
        self.node = node
        self.metrics_port = metrics_port  # /metrics and /healthz on loopback when set
        self.socket_path = str(socket_path)
        self._allocations = allocations
        # Explicit devices let the playground use the UUIDs its scheduler hands out.
        devices = (
            make_gpus(gpus, model=model, node=node, migs_per_gpu=migs_per_gpu)
            if isinstance(gpus, int)
            else list(gpus)
        )
        self.nvml = SimulatedNVML(devices)

        def holders() -> dict[str, tuple[str, str]]:
            return devices_by_holder(self._allocations())

        def holder(uuid: str) -> str | None:
            held = holders().get(uuid)
            return "/".join(held) if held else None

        self.nvml.set_source(pod_utilization_source(holders, pod_utilization), holder=holder)
        self.kubelet = FakeKubelet(allocations)
        self._client = PodResourcesClient(self.socket_path, timeout=10)
        self.agent = Agent(
            AgentConfig(
                node=node,
                sample_interval=sample_interval,
                report_interval=report_interval,
                metrics_host="127.0.0.1",
                metrics_port=metrics_port or 0,
            ),
            backend=self.nvml,
            kubelet=self._client,
            publisher=publisher,
            pods=pod_uids,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def gpu_uuids(self) -> list[str]:
        """Allocatable device IDs: MIG devices where the GPUs are partitioned, else GPUs."""
        return [m.uuid for g in self.nvml.gpus for m in g.migs] or [g.uuid for g in self.nvml.gpus]

    async def start(self) -> None:
        await self.kubelet.start(self.socket_path)
        serve = self.metrics_port is not None
        self._task = asyncio.create_task(self.agent.run(serve=serve), name=f"agent-{self.node}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.close()
        await self.kubelet.stop()
