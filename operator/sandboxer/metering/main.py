"""Wires the agent from command-line settings: backend, kubelet client, API publisher."""

from __future__ import annotations

import asyncio
import contextlib

from sandboxer.metering.agent import Agent, AgentConfig
from sandboxer.metering.cgroups import CgroupResolver
from sandboxer.metering.kubeconfig import load_endpoint
from sandboxer.metering.podresources.client import PodResourcesClient
from sandboxer.metering.probe import GPUBackend
from sandboxer.metering.publisher import KubeHTTP, NodePods, NodeReportPublisher

BACKENDS = ("nvml", "simulated")


def make_backend(kind: str, *, node: str, sim_gpus: int = 8) -> GPUBackend:
    if kind == "nvml":
        from sandboxer.metering.nvml import NvmlProbe

        return NvmlProbe()
    if kind == "simulated":
        from sandboxer.metering.simulated import SimulatedNVML, make_gpus

        return SimulatedNVML(make_gpus(sim_gpus, node=node))
    raise ValueError(f"unknown backend {kind!r}: use one of {', '.join(BACKENDS)}")


def run_agent(
    *,
    node: str,
    kubeconfig: str | None,
    socket: str,
    proc_root: str,
    sample_interval: float,
    report_interval: float,
    metrics_port: int,
    backend: str,
    sim_gpus: int = 8,
) -> None:
    config = AgentConfig(
        node=node,
        sample_interval=sample_interval,
        report_interval=report_interval,
        metrics_port=metrics_port,
    )
    gpus = make_backend(backend, node=node, sim_gpus=sim_gpus)
    api = KubeHTTP(load_endpoint(kubeconfig))
    kubelet = PodResourcesClient(socket)
    agent = Agent(
        config,
        backend=gpus,
        kubelet=kubelet,
        publisher=NodeReportPublisher(api, node),
        pods=NodePods(api, node),
        cgroups=CgroupResolver(proc_root),
    )

    async def main() -> None:
        try:
            await agent.run()
        finally:
            await kubelet.close()
            await api.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
