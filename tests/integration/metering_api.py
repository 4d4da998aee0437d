"""The embedded API as the agent's API server: the project's CRDs, pods put in place as a
kubelet would see them, and the agent's HTTP client with the cluster's CA and a token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.server import Sent
from sandboxer.metering.kubeconfig import KubeEndpoint
from sandboxer.metering.publisher import KubeHTTP
from tests.integration.conftest import ROOT

V1ALPHA1 = "sandboxer.io/v1alpha1"


@contextlib.asynccontextmanager
async def reports_cluster() -> AsyncIterator[DevCluster]:
    async with DevCluster() as cluster:
        cluster.load_crds(ROOT / "crds")
        await cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        yield cluster


def kube_http(cluster: DevCluster) -> KubeHTTP:
    return KubeHTTP(KubeEndpoint(cluster.url, cluster.tls.client_context(), cluster.token()))


def put_pod(cluster: DevCluster, name: str, uid: str, node: str = "node-a") -> None:
    """A pod already bound to node (no scheduler involved), with the uid the kubelet reports."""
    cluster.apiserver.put_system(
        ("", "v1", "pods"),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "team", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nb"}]},
        },
    )


def report(cluster: DevCluster, node: str) -> dict[str, Any] | None:
    return cluster.get(V1ALPHA1, "GPUNodeReport", node)


def writes(log: Iterable[Sent]) -> list[str]:
    """The POSTs and PATCHes the server received, in order."""
    return [f"{r.method} {r.path}" for r in log if r.method in ("POST", "PATCH")]
