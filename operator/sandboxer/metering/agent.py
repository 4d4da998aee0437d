"""The node metering agent: sample GPUs, attribute them to pods, count, publish one report.

Every `sample_interval` (10 s): read the GPU backend, ask the kubelet which pod holds which GPU,
map compute processes to pods through their cgroups, and credit the counter book. Every
`report_interval` (30 s): one merge-patch of this node's `GPUNodeReport` status. `/metrics` and
`/healthz` are served on one aiohttp port. The clock is injectable, and all waiting is
`asyncio.sleep`, so tests drive time with looptime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.api.types import Condition
from sandboxer.metering.cgroups import CgroupResolver
from sandboxer.metering.counters import DEFAULT_ACTIVE_THRESHOLD, CounterBook, PodRef
from sandboxer.metering.metrics import AgentView, agent_registry
from sandboxer.metering.podresources.client import PodResourcesUnavailable
from sandboxer.metering.podresources.model import PodAllocation, devices_by_holder
from sandboxer.metering.probe import DeviceSample, GPUBackend, ProbeUnavailable
from sandboxer.metering.report import build_status, health_conditions
from sandboxer.observability.logging import get_logger

log = get_logger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Kubelet(Protocol):
    async def list(self) -> list[PodAllocation]: ...


class Publisher(Protocol):
    writes: int

    async def publish(self, status: GPUNodeReportStatus) -> None: ...


class PodDirectory(Protocol):
    async def uids(self) -> dict[tuple[str, str], str]: ...


@dataclass(frozen=True)
class AgentConfig:
    node: str
    sample_interval: float = 10.0
    report_interval: float = 30.0
    active_threshold: float = DEFAULT_ACTIVE_THRESHOLD
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from outside the pod
    metrics_port: int = 9400  # dcgm-exporter's port, so existing scrape configs find it

    def __post_init__(self) -> None:
        if not self.node:
            raise ValueError("node name is empty: pass --node-name or set NODE_NAME")
        if self.sample_interval <= 0 or self.report_interval < self.sample_interval:
            raise ValueError(
                f"need 0 < sample interval ({self.sample_interval}s) <= report interval "
                f"({self.report_interval}s)"
            )


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        backend: GPUBackend,
        kubelet: Kubelet,
        publisher: Publisher,
        pods: PodDirectory | None = None,
        cgroups: CgroupResolver | None = None,
        clock: Clock = utc_now,
        epoch: str | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.kubelet = kubelet
        self.publisher = publisher
        self.pods = pods
        self.cgroups = cgroups or CgroupResolver()
        self.clock = clock
        self.book = CounterBook(
            sample_interval=config.sample_interval,
            active_threshold=config.active_threshold,
            retain_seconds=2 * config.report_interval,
            epoch=epoch,
        )
        self.devices: list[DeviceSample] = []
        self.allocations: list[PodAllocation] = []
        self.holders: dict[str, tuple[str, str]] = {}
        self.sequence = 0
        self.samples = self.sample_errors = self.reports = self.report_errors = 0
        self.last_sample_at: datetime | None = None
        self.last_report_at: datetime | None = None
        self._uids: dict[tuple[str, str], str] = {}
        self._pid_uids: dict[int, str | None] = {}
        self._last_lookup: datetime | None = None
        self._nvml_error: tuple[str, str] | None = None
        self._kubelet_error: str | None = None
        self._conditions: list[Condition] = []
        self.registry = agent_registry(self.view)

    @property
    def epoch(self) -> str:
        return self.book.epoch

    # --- one sample ----------------------------------------------------------------------------
    async def tick(self) -> None:
        at = self.clock()
        self.samples += 1
        try:
            self.devices = self.backend.sample()
            if self._nvml_error is not None:
                log.info("Recovered NVML access", node=self.config.node)
            self._nvml_error = None
        except ProbeUnavailable as exc:
            self.sample_errors += 1
            if self._nvml_error != (exc.reason, exc.message):
                log.warning("Failed to read GPUs", reason=exc.reason, error=exc.message)
            self._nvml_error = (exc.reason, exc.message)
            self.devices = []
        try:
            self.allocations = await self.kubelet.list()
            self._kubelet_error = None
        except PodResourcesUnavailable as exc:
            # Keep the last known allocations: a kubelet restart should not look like every pod
            # leaving; capped intervals bound what a stale view can credit.
            if self._kubelet_error != str(exc):
                log.warning("Failed to list pod resources", error=str(exc))
            self._kubelet_error = str(exc)
        self.holders = devices_by_holder(self.allocations)
        process_pods = self._process_pods()
        await self._resolve_uids(at, process_pods)
        holders = {
            uuid: PodRef(ns, name, self._uids.get((ns, name), ""))
            for uuid, (ns, name) in self.holders.items()
        }
        self.book.observe(at, self.devices, holders, process_pods)
        self.last_sample_at = at

    def _process_pods(self) -> dict[int, str]:
        """PID -> pod UID for the compute processes seen now (cached while the PID lives)."""
        seen: dict[int, str | None] = {}
        for device in self.devices:
            for proc in device.processes:
                if proc.pid in seen:
                    continue
                if proc.pid in self._pid_uids:
                    seen[proc.pid] = self._pid_uids[proc.pid]
                else:
                    seen[proc.pid] = self.cgroups.pod_uid(proc.pid)
        self._pid_uids = seen
        return {pid: uid for pid, uid in seen.items() if uid}

    async def _resolve_uids(self, at: datetime, process_pods: dict[int, str]) -> None:
        """Pod UIDs: from the API (pods on this node), else from the cgroup of the processes on
        the pod's GPUs. The API comes first: a process of another pod on the GPU (a container
        that sees every GPU) would otherwise lend its UID to the holder."""
        held = set(self.holders.values())
        self._uids = {key: uid for key, uid in self._uids.items() if key in held}
        missing = held - self._uids.keys()
        due = self._last_lookup is None or (
            (at - self._last_lookup).total_seconds() >= self.config.report_interval
        )
        if missing and self.pods is not None and due:
            self._last_lookup = at
            try:
                found = await self.pods.uids()
            except Exception as exc:  # noqa: BLE001 - any API failure: retry next interval
                log.warning("Failed to look up pod UIDs", error=str(exc))
                found = {}
            self._uids.update({key: found[key] for key in missing if key in found})
        by_device = {d.uuid: d for d in self.devices}
        for uuid, key in self.holders.items():
            device = by_device.get(uuid)
            if key in self._uids or device is None:
                continue
            uids = {process_pods[p.pid] for p in device.processes if p.pid in process_pods}
            if len(uids) == 1:
                self._uids[key] = uids.pop()

    # --- one report ----------------------------------------------------------------------------
    def status(self) -> GPUNodeReportStatus:
        at = self.clock()
        self.book.prune(at)
        lost = [d.uuid for d in self.devices if d.state == "Lost"]
        self._conditions = health_conditions(
            self._conditions,
            at.replace(microsecond=0),
            nvml_error=self._nvml_error,
            kubelet_error=self._kubelet_error,
            lost_gpus=lost,
        )
        return build_status(
            node=self.config.node,
            epoch=self.epoch,
            sequence=self.sequence + 1,
            at=at,
            devices=self.devices,
            pairs=self.book.pairs(),
            sample_interval=self.config.sample_interval,
            report_interval=self.config.report_interval,
            conditions=self._conditions,
        )

    async def report(self) -> None:
        status = self.status()
        try:
            await self.publisher.publish(status)
        except Exception as exc:  # noqa: BLE001 - counters are cumulative: the next report heals
            self.report_errors += 1
            log.warning("Failed to publish GPUNodeReport", node=self.config.node, error=str(exc))
            return
        self.sequence = status.sequence
        self.reports += 1
        self.last_report_at = self.clock()

    # --- loop and HTTP -------------------------------------------------------------------------
    async def run(self, *, serve: bool = True) -> None:
        """Sample and report until cancelled."""
        runner = await self._serve() if serve else None
        log.info("Started metering agent", node=self.config.node, epoch=self.epoch)
        try:
            loop = asyncio.get_running_loop()
            next_report = loop.time()  # publish right away, so the node shows up at once
            while True:
                started = loop.time()
                await self.tick()
                if loop.time() >= next_report - 1e-6:
                    await self.report()
                    next_report += self.config.report_interval
                await asyncio.sleep(max(self.config.sample_interval - (loop.time() - started), 0))
        finally:
            if runner is not None:
                await runner.cleanup()
            self.backend.close()

    def healthy(self) -> bool:
        """Alive while samples keep coming (a hung NVML call or a stuck loop fails this)."""
        if self.last_sample_at is None:
            return True  # starting up
        age = (self.clock() - self.last_sample_at).total_seconds()
        return age <= 3 * self.config.sample_interval

    def view(self) -> AgentView:
        return AgentView(
            devices=self.devices,
            pairs=self.book.pairs(),
            holders=self.holders,
            nvml_up=self._nvml_error is None,
            samples=self.samples,
            sample_errors=self.sample_errors,
            reports=self.reports,
            report_errors=self.report_errors,
            api_writes=self.publisher.writes,
            last_report_at=self.last_report_at.timestamp() if self.last_report_at else None,
        )

    def app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            ok = self.healthy()
            return web.Response(status=200 if ok else 503, text="ok" if ok else "stale samples")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        return app

    async def _serve(self) -> web.AppRunner:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.metrics_host, self.config.metrics_port)
        await site.start()
        return runner
