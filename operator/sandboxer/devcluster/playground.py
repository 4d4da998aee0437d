"""`sandboxer dev`: the dev cluster with simulated GPU nodes, until interrupted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from sandboxer.devcluster.cluster import Companion, DevCluster


def default_companions() -> list[Companion]:
    """What runs beside the API server in the playground (the operator and node agents join
    here as they land)."""
    return []


def instructions(kubeconfig: Path, url: str, nodes: int, gpus: int, model: str) -> str:
    return "\n".join(
        [
            f"Sandboxer dev cluster is serving at {url}",
            f"  {nodes} simulated node(s) with {gpus} x {model} GPU(s) each",
            f"  kubeconfig written to {kubeconfig} (users: admin, alice, bob)",
            "",
            "Try:",
            f"  kubectl --kubeconfig {kubeconfig} apply -f examples/class-h100.yaml",
            f"  kubectl --kubeconfig {kubeconfig} --user alice apply -f examples/sandbox.yaml",
            f"  kubectl --kubeconfig {kubeconfig} --user alice get esb",
            "",
            "No RBAC is evaluated: every user may do everything. Press Ctrl-C to stop.",
        ]
    )


async def serve(
    kubeconfig: Path,
    nodes: int = 2,
    gpus_per_node: int = 8,
    gpu_model: str = "H100",
    *,
    companions: Sequence[Companion] | None = None,
    stop: asyncio.Event | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    cluster = DevCluster()
    for companion in default_companions() if companions is None else companions:
        cluster.add_companion(companion)
    async with cluster:
        cluster.load_crds()
        for index in range(nodes):
            cluster.add_gpu_node(f"gpu-node-{index}", gpus=gpus_per_node, model=gpu_model)
        cluster.write_kubeconfig(kubeconfig)
        echo(instructions(kubeconfig, cluster.url, nodes, gpus_per_node, gpu_model))
        await (stop or asyncio.Event()).wait()
