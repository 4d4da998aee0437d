"""`DevCluster`: the embedded API server with simulated GPU nodes, as one async context manager.

    async with DevCluster() as cluster:
        cluster.load_crds(Path("crds"))
        cluster.add_gpu_node("gpu-0", gpus=8, model="H100")
        cluster.write_kubeconfig(Path("kubeconfig"))
        ...  # kubectl --kubeconfig kubeconfig --user alice apply -f examples/sandbox.yaml

Companions (the operator, node agents) are async callables started with the cluster and
cancelled when it stops; the integrator adds them with `add_companion`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp.web
import yaml

from sandboxer import tlscerts
from sandboxer.devcluster import kubeconfig
from sandboxer.devcluster.apiserver import ApiServer
from sandboxer.devcluster.auth import TEAMS, User, Users
from sandboxer.devcluster.collector import NAMESPACES
from sandboxer.devcluster.nodes import NodeSpec, build_node
from sandboxer.devcluster.notebooks import NotebookServers
from sandboxer.devcluster.rbac import policy
from sandboxer.devcluster.resources import CRD_KEY, ResourceType
from sandboxer.devcluster.scheduler import NODES, Allocation, AllocationHook, Scheduler
from sandboxer.devcluster.server import HttpApi
from sandboxer.devcluster.statefulsets import StatefulSetController
from sandboxer.devcluster.store import ResKey
from sandboxer.manifests.labels import TEAM_LABEL

Companion = Callable[["DevCluster"], Coroutine[Any, Any, None]]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class DevCluster:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 60.0,
        clock: Callable[[], datetime.datetime] = _utcnow,
        container_start: float = 0.0,
        jupyter: bool = False,
    ) -> None:
        self.host, self._port = host, port
        self.apiserver = ApiServer(clock=clock)
        self.users = Users.defaults()
        for team in TEAMS:  # the users' home namespaces, labelled as the loop reads teams
            self.apiserver.put_system(
                NAMESPACES,
                {"metadata": {"name": team, "labels": {TEAM_LABEL: team}},
                 "status": {"phase": "Active"}},
            )  # fmt: skip
        # The chart's release namespace: the operator's service account, Role and Lease are there.
        self.apiserver.put_system(
            NAMESPACES, {"metadata": {"name": policy.NAMESPACE}, "status": {"phase": "Active"}}
        )
        for key, obj in (*policy.bootstrap(), *policy.chart(TEAMS)):
            self.apiserver.put_system(key, obj)
        self.tls = tlscerts.issue((host, "localhost"))
        self.http = HttpApi(self.apiserver, self.users, bookmark_interval=bookmark_interval)
        self.scheduler = Scheduler(self.apiserver, container_start=container_start)
        # With `jupyter`, a real Jupyter Server per running notebook pod (devcluster/notebooks.py).
        self.notebooks = NotebookServers(self.apiserver) if jupyter else None
        if self.notebooks is not None:
            self.scheduler.started.append(self.notebooks.start)
            self.scheduler.stopped.append(self.notebooks.stop)
            self.scheduler.ready_when = self.notebooks.answering
        self.statefulsets = StatefulSetController(self.apiserver)
        self.companions: list[Companion] = []
        self.node_specs: dict[str, NodeSpec] = {}  # simulated GPU nodes by name
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: aiohttp.web.ServerRunner | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        server = aiohttp.web.Server(self.http.handle)
        self._runner = aiohttp.web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(
            self._runner,
            self.host,
            self._port,
            ssl_context=self.tls.server_context(),
        )
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self._port
        self.url = f"https://{self.host}:{port}"
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.scheduler.run(), name="devcluster-scheduler"))
        self._tasks.append(loop.create_task(self.statefulsets.run(), name="devcluster-sts"))
        for companion in self.companions:
            self._tasks.append(loop.create_task(companion(self), name=f"companion-{companion}"))
        # Anything created before start (nodes, pods) gets scheduled now.
        self.scheduler._wake.set()
        self.statefulsets._wake.set()

    async def stop(self) -> None:
        self.http.close_watches()
        for task in reversed(self._tasks):
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.notebooks is not None:
            await asyncio.to_thread(self.notebooks.close)
        await self.apiserver.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_companion(self, companion: Companion) -> None:
        """Run `companion(cluster)` while the cluster runs (started now if already running)."""
        self.companions.append(companion)
        if self._runner is not None:
            task = asyncio.get_running_loop().create_task(companion(self))
            self._tasks.append(task)

    # -- setup -------------------------------------------------------------------------------

    def load_crds(self, directory: Path | None = None) -> list[str]:
        """Register every CRD in `directory/*.yaml` (default: generated from the API models)."""
        if directory is None:
            from sandboxer.api.crdgen import crd
            from sandboxer.api.kinds import ALL_KINDS

            return self.install_crds(crd(kind) for kind in ALL_KINDS)
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise FileNotFoundError(
                f"no CRD files (*.yaml) in {directory}; run `sandboxer crds --out {directory}`"
            )
        docs = [d for path in files for d in yaml.safe_load_all(path.read_text())]
        return self.install_crds(docs)

    def install_crds(self, docs: Iterable[Any]) -> list[str]:
        names = []
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                self.apiserver.put_system(CRD_KEY, doc)
                names.append(doc["metadata"]["name"])
        return names

    def add_gpu_node(
        self,
        name: str,
        gpus: int = 8,
        model: str = "H100",
        mig_profile: str | None = None,
        *,
        cpu: str = "64",
        memory: str = "512Gi",
        taints: tuple[Mapping[str, str], ...] = (),
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        spec = NodeSpec(name, model, gpus, mig_profile, cpu, memory, taints, dict(labels or {}))
        self.scheduler.add_node(spec)
        self.node_specs[name] = spec
        return self.apiserver.put_system(NODES, build_node(spec))

    def add_user(self, name: str, groups: tuple[str, ...]) -> str:
        """A further bearer-token user (e.g. the operator's service account); returns its token."""
        return self.users.add(User(name, groups))

    def session(self, user: str = "admin") -> aiohttp.ClientSession:
        """An HTTP client for the API as `user` (relative URLs; close it when done)."""
        return aiohttp.ClientSession(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(user)}"},
            connector=aiohttp.TCPConnector(ssl=self.tls.client_context()),
        )

    def token(self, user: str = "admin") -> str:
        return self.users.token(user)

    def kubeconfig(
        self, user: str = "admin", extensions: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        return kubeconfig.build(self.url, self.users, self.tls.ca_pem, user, extensions)

    def write_kubeconfig(
        self,
        path: Path,
        user: str = "admin",
        extensions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Path:
        if not self.url:
            raise RuntimeError(
                "start the cluster before writing its kubeconfig: the URL is not known yet"
            )
        return kubeconfig.write(path, self.kubeconfig(user, extensions))

    # -- in-process access -------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> ResourceType:
        rt = self.apiserver.registry.by_kind(api_version, kind)
        if rt is None:
            raise KeyError(f"{kind} ({api_version}) is not served; load its CRD first")
        return rt

    def get(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        rt = self.resource(api_version, kind)
        return self.apiserver.store.get(rt.key, namespace if rt.namespaced else "", name)

    def list(
        self, api_version: str, kind: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        rt = self.resource(api_version, kind)
        return list(self.apiserver.store.iter(rt.key, namespace))

    def objects(self, key: ResKey, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        return self.apiserver.store.iter(key, namespace)

    async def apply(self, obj: dict[str, Any], user: str = "admin") -> dict[str, Any]:
        """Create or merge-patch an object in-process, through admission as `user`."""
        rt = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace", "default") if rt.namespaced else ""
        who = self.users.get(user)
        if self.apiserver.store.get(rt.key, ns, meta.get("name", "")) is None:
            return await self.apiserver.create(rt, ns, obj, user=who)
        return await self.apiserver.patch(
            rt, ns, meta["name"], "application/merge-patch+json", obj, user=who
        )

    def allocations(self, node: str) -> dict[str, Allocation]:
        """GPU/MIG devices per pod UID on a node, as the kubelet PodResources API reports them."""
        return self.scheduler.allocations(node)

    def on_allocation_change(self, hook: AllocationHook) -> None:
        """`hook(node_name, allocations)` runs whenever a pod gets or frees devices on a node."""
        self.scheduler.hooks.append(hook)

    def request_count(self, verb: str, plural: str) -> int:
        return self.http.requests[(verb, plural)]
