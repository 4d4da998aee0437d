"""Writes this node's `GPUNodeReport` (one status merge-patch per report interval) and looks up
the UIDs of pods on the node (the kubelet's PodResources API gives only namespace and name).

Uses the official `kubernetes` sync client in a worker thread, so kubeconfig handling (certs,
tokens, exec plugins, in-cluster service accounts) is the standard one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import kubernetes

from sandboxer import GROUP, VERSION
from sandboxer.api.kinds import GPU_NODE_REPORT
from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.observability.logging import get_logger

log = get_logger(__name__)
MERGE_PATCH = "application/merge-patch+json"


def load_api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """The API client from `kubeconfig`, else in-cluster config, else the default kubeconfig."""
    config = kubernetes.client.Configuration()
    loader: Any = kubernetes.config  # untyped module
    if kubeconfig:
        loader.load_kube_config(config_file=kubeconfig, client_configuration=config)
    else:
        try:
            loader.load_incluster_config(client_configuration=config)
        except loader.ConfigException:
            loader.load_kube_config(client_configuration=config)
    return kubernetes.client.ApiClient(config)


class NodeReportPublisher:
    """Keeps the cluster-scoped `GPUNodeReport/<node>` current with a single write per report."""

    def __init__(self, api: kubernetes.client.ApiClient, node: str) -> None:
        self._objects = kubernetes.client.CustomObjectsApi(api)
        self.node = node
        self.writes = 0  # API writes made (creates + patches); tests and metrics read it

    async def publish(self, status: GPUNodeReportStatus) -> None:
        await asyncio.to_thread(self._publish, {"status": status.dump()})

    def _publish(self, body: dict[str, Any]) -> None:
        try:
            self._patch(body)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            self._create()  # first report from this node (or someone deleted it)
            self._patch(body)

    def _patch(self, body: dict[str, Any]) -> None:
        self.writes += 1
        self._objects.patch_cluster_custom_object_status(
            GROUP, VERSION, GPU_NODE_REPORT.plural, self.node, body, _content_type=MERGE_PATCH
        )

    def _create(self) -> None:
        manifest = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": GPU_NODE_REPORT.kind,
            "metadata": {
                "name": self.node,
                "labels": {"app.kubernetes.io/managed-by": "sandboxer-agent"},
            },
            "spec": {},
        }
        self.writes += 1
        try:
            self._objects.create_cluster_custom_object(
                GROUP, VERSION, GPU_NODE_REPORT.plural, manifest
            )
            log.info("Created GPUNodeReport", node=self.node)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:  # created meanwhile: fine, patch it
                raise


class NodePods:
    """Pod UIDs by (namespace, name) for pods on this node, read from the API on demand."""

    def __init__(self, api: kubernetes.client.ApiClient, node: str) -> None:
        self._core = kubernetes.client.CoreV1Api(api)
        self.node = node
        self.reads = 0

    async def uids(self) -> dict[tuple[str, str], str]:
        return await asyncio.to_thread(self._uids)

    def _uids(self) -> dict[tuple[str, str], str]:
        self.reads += 1
        pods: Any = self._core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.node}", _preload_content=False
        )
        items: Iterable[dict[str, Any]] = json.loads(pods.data).get("items", [])
        return {
            (meta.get("namespace", ""), meta.get("name", "")): meta["uid"]
            for item in items
            if (item.get("spec") or {}).get("nodeName") == self.node
            for meta in [item.get("metadata") or {}]
            if meta.get("uid")
        }
