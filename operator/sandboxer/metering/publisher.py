"""Writes this node's `GPUNodeReport` (one status merge-patch per report interval) and looks up
the UIDs of pods on the node (the kubelet's PodResources API gives only namespace and name).

Plain HTTP through aiohttp (see `kubeconfig.py` for why not the `kubernetes` client).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from sandboxer import GROUP, VERSION
from sandboxer.api.kinds import GPU_NODE_REPORT
from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.metering.kubeconfig import KubeEndpoint
from sandboxer.observability.logging import get_logger

log = get_logger(__name__)
MERGE_PATCH = "application/merge-patch+json"
# Every API call the agent makes, as (apiGroup, resource, RBAC verb): sandboxer.rbac.AGENT_RULES
# grants exactly these (tests/contract/test_rbac_coverage.py).
CALLS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("", "pods", "list"),  # NodePods: the pods on this node, by field selector
        (GROUP, GPU_NODE_REPORT.plural, "create"),  # the first report of a node
        (GROUP, f"{GPU_NODE_REPORT.plural}/status", "patch"),  # every report
    }
)
TIMEOUT = aiohttp.ClientTimeout(total=30)


class KubeAPIError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:300]}")
        self.status = status


class KubeHTTP:
    """One aiohttp session to the API server; JSON in, JSON out."""

    def __init__(self, endpoint: KubeEndpoint) -> None:
        self.endpoint = endpoint
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self.endpoint.ssl_context or False)
            self._session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
        headers = {**self.endpoint.headers, **self.endpoint.auth_headers(),
                   "Accept": "application/json", "Content-Type": content_type}  # fmt: skip
        url = self.endpoint.server + path
        async with self._session.request(method, url, json=body, headers=headers) as response:
            if response.status >= 400:
                raise KubeAPIError(response.status, method, path, await response.text())
            return await response.json(content_type=None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class NodeReportPublisher:
    """Keeps the cluster-scoped `GPUNodeReport/<node>` current with a single write per report."""

    def __init__(self, http: KubeHTTP, node: str) -> None:
        self._http = http
        self.node = node
        self.path = f"/apis/{GROUP}/{VERSION}/{GPU_NODE_REPORT.plural}"
        self.writes = 0  # API writes made (creates + patches); tests and metrics read it

    async def publish(self, status: GPUNodeReportStatus) -> None:
        body = {"status": status.dump()}
        try:
            await self._patch(body)
        except KubeAPIError as exc:
            if exc.status != 404:
                raise
            await self._create()  # first report from this node (or someone deleted it)
            await self._patch(body)

    async def _patch(self, body: dict[str, Any]) -> None:
        self.writes += 1
        await self._http.request("PATCH", f"{self.path}/{self.node}/status", body, MERGE_PATCH)

    async def _create(self) -> None:
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
            await self._http.request("POST", self.path, manifest)
            log.info("Created GPUNodeReport", node=self.node)
        except KubeAPIError as exc:
            if exc.status != 409:  # created meanwhile: fine, patch it
                raise


class NodePods:
    """Pod UIDs by (namespace, name) for pods on this node, read from the API on demand."""

    def __init__(self, http: KubeHTTP, node: str) -> None:
        self._http = http
        self.node = node
        self.reads = 0

    async def uids(self) -> dict[tuple[str, str], str]:
        self.reads += 1
        pods = await self._http.request(
            "GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{self.node}"
        )
        return {
            (meta.get("namespace", ""), meta.get("name", "")): meta["uid"]
            for item in pods.get("items", [])
            # Filter here too: not every API (e.g. test emulators) honours field selectors.
            if (item.get("spec") or {}).get("nodeName") == self.node
            for meta in [item.get("metadata") or {}]
            if meta.get("uid")
        }
