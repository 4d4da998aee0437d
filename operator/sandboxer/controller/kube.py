"""The one module that calls the Kubernetes API for our own writes (kopf does its watching).

A tiny aiohttp client on the same credentials kopf logs in with (kopf.ConnectionInfo from the
kubeconfig, the in-cluster service account, or an explicit server). Only what the controller
needs: create, merge-patch, get and replace (PUT, for the leader Lease), each declared in
CALLS. RBAC for these calls is listed in sandboxer/rbac.py; tests/contract/test_rbac_coverage.py
checks the two agree.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import aiohttp
import kopf

from sandboxer import API_VERSION

# (apiVersion, kind) -> (plural, namespaced) for every kind the controller writes.
RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Event"): ("events", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("httproutes", True),
    (API_VERSION, "ExperimentSandbox"): ("experimentsandboxes", True),
    (API_VERSION, "SandboxClass"): ("sandboxclasses", False),
    (API_VERSION, "ComputeBudget"): ("computebudgets", False),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True),
}

Verb = Literal["get", "create", "patch", "update"]
# Every call this client may make: (apiVersion, kind, subresource, RBAC verb). The client refuses
# any other, so this set is the operator's own API surface and RBAC must grant exactly it.
CALLS: frozenset[tuple[str, str, str | None, Verb]] = frozenset(
    {
        # The token Secret is created once and never read back or rewritten.
        ("v1", "Secret", None, "create"),
        # Children are create-or-patch (controller/children.py); kopf watches only StatefulSets
        # and Pods (through its indexes), so nothing here lists or gets them.
        *(
            (api_version, kind, None, verb)
            for api_version, kind in (
                ("v1", "PersistentVolumeClaim"),
                ("v1", "Service"),
                ("networking.k8s.io/v1", "NetworkPolicy"),
                ("apps/v1", "StatefulSet"),
                ("networking.k8s.io/v1", "Ingress"),
                ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            )
            for verb in ("create", "patch")
        ),
        # The validating webhook reads a class kopf's index does not hold yet.
        (API_VERSION, "SandboxClass", None, "get"),
        # Status re-derived when a child changes (the sandbox's own handler patches via kopf).
        (API_VERSION, "ExperimentSandbox", "status", "patch"),
        # The accounting loop (controller/loop_runner.py): suspends (spec.suspend) on idle, lifetime
        # or exhausted budget, and writes budget status.
        (API_VERSION, "ExperimentSandbox", None, "patch"),
        (API_VERSION, "ComputeBudget", "status", "patch"),
        # ... and explains its decisions with Events (posted by us: the loop's task runs
        # outside kopf's handler context, where kopf.event has no posting queue).
        ("v1", "Event", None, "create"),
        # Leader election (controller/leader.py): one Lease in the operator's namespace, read,
        # created once and replaced with its resourceVersion (a compare-and-swap, as client-go).
        *(("coordination.k8s.io/v1", "Lease", None, verb) for verb in ("get", "create", "update")),
    }
)

Outcome = Literal["created", "patched", "unchanged"]


class UndeclaredCall(ValueError):
    """A call missing from CALLS: declare it, and grant it in sandboxer/rbac.py."""


class KubeError(Exception):
    """An API error with the server's status code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class AlreadyExists(KubeError):
    pass


class NotFound(KubeError):
    pass


def _ssl_context(info: kopf.ConnectionInfo, scratch: Path) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        return False  # aiohttp: skip verification, as the kubeconfig asked
    cadata = info.ca_data
    if isinstance(cadata, bytes):
        cadata = cadata.decode()
    if cadata is not None and "BEGIN CERTIFICATE" not in cadata:
        cadata = base64.b64decode(cadata).decode()  # kubeconfig *-data fields are base64
    context = ssl.create_default_context(cafile=info.ca_path, cadata=cadata)
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        cert, key = scratch / "client.crt", scratch / "client.key"
        for path, data in ((cert, info.certificate_data), (key, info.private_key_data)):
            raw = data if isinstance(data, bytes) else data.encode()
            path.write_bytes(raw if b"BEGIN" in raw else base64.b64decode(raw))
            path.chmod(0o600)
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


class KubeClient:
    """create / patch / get for the kinds in RESOURCES. Use from one event loop."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self.info = info
        self._session: aiohttp.ClientSession | None = None
        self._scratch = tempfile.TemporaryDirectory(prefix="sandboxer-kube-")
        self.requests = 0  # for the benchmark's requests-per-sandbox figure

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Accept": "application/json", "User-Agent": "sandboxer-operator"}
            if self.info.token:
                headers["Authorization"] = f"{self.info.scheme or 'Bearer'} {self.info.token}"
            auth = None
            if self.info.username and self.info.password:
                auth = aiohttp.BasicAuth(self.info.username, self.info.password)
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self.info, Path(self._scratch.name)))
            self._session = aiohttp.ClientSession(headers=headers, auth=auth, connector=connector)
        return self._session

    def url(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str | None = None,
        subresource: str | None = None,
        *,
        verb: Verb = "get",
    ) -> str:
        if (api_version, kind, subresource, verb) not in CALLS:
            what = f"{verb} {kind}" + (f"/{subresource}" if subresource else "")
            raise UndeclaredCall(
                f"{what} ({api_version}) is not in sandboxer.controller.kube.CALLS: declare it "
                "there and grant it in sandboxer/rbac.py"
            )
        plural, namespaced = RESOURCES[(api_version, kind)]
        root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{root}/namespaces/{namespace}/{plural}" if namespaced else f"{root}/{plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return self.info.server.rstrip("/") + path

    async def _call(self, method: str, url: str, body: Any = None, ctype: str = "") -> Any:
        session = await self._http()
        headers = {"Content-Type": ctype} if ctype else {}
        self.requests += 1
        async with session.request(method, url, json=body, headers=headers) as resp:
            if resp.status < 400:
                return await resp.json(content_type=None)
            text = await resp.text()
            try:
                message = str((await resp.json(content_type=None)).get("message", text))
            except ValueError:
                message = text
            error = {409: AlreadyExists, 404: NotFound}.get(resp.status, KubeError)
            raise error(resp.status, message)

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Any:
        try:
            return await self._call("GET", self.url(api_version, kind, namespace, name))
        except NotFound:
            return None

    async def create(self, obj: Mapping[str, Any]) -> Any:
        meta = obj["metadata"]
        url = self.url(obj["apiVersion"], obj["kind"], meta.get("namespace"), verb="create")
        return await self._call("POST", url, dict(obj), "application/json")

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> Any:
        url = self.url(api_version, kind, namespace, name, subresource, verb="patch")
        return await self._call("PATCH", url, dict(patch), "application/merge-patch+json")

    async def replace(self, obj: Mapping[str, Any]) -> Any:
        """PUT obj; with metadata.resourceVersion set the server refuses (409) a stale write."""
        meta = obj["metadata"]
        url = self.url(
            obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], verb="update"
        )
        return await self._call("PUT", url, dict(obj), "application/json")

    async def ensure(
        self, obj: Mapping[str, Any], patch: Mapping[str, Any] | None, *, exists: bool = False
    ) -> Outcome:
        """Create obj; if it is there already (409), merge-patch it with `patch` (None: leave it).

        Restart-safe: a retry after a crash between two creates finds the first child in place.
        `exists` is a hint (the object is probably there): patch first and create on 404, one
        request instead of two.
        """
        meta = obj["metadata"]
        if exists and patch is not None:
            try:
                await self.patch(obj["apiVersion"], obj["kind"], meta.get("namespace"),
                                 meta["name"], patch)  # fmt: skip
                return "patched"
            except NotFound:
                pass
        try:
            await self.create(obj)
            return "created"
        except AlreadyExists:
            if patch is None:
                return "unchanged"
        await self.patch(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], patch)
        return "patched"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._scratch.cleanup()
