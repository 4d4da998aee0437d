"""kopf glue of the one cluster-wide loop: indexes in, patches, Events and notifications out.

One asyncio task (never a timer per object, see STYLE.md 7), run only by the replica that holds
the leader Lease (controller/leader.py): each pass copies the indexes into a `Snapshot`, runs the
`AccountingLoop` in a worker thread (ledger I/O and arithmetic stay off the event loop that serves
webhooks), then applies what it decided. Each term starts from the API and the ledger, as a
restarted operator does, so a new leader continues its predecessor's schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp
import kopf

from sandboxer import API_VERSION, GROUP, VERSION
from sandboxer.budgets.gate import no_budget_policy
from sandboxer.controller import jupyter_activity, peer_gate
from sandboxer.controller.config import OperatorConfig, token_key
from sandboxer.controller.kube import KubeClient, KubeError
from sandboxer.controller.leader import (
    PEER_URL_ANNOTATION,
    LeaderElector,
    LeaseTimings,
    default_identity,
)
from sandboxer.ledger.store import open_store
from sandboxer.loop.accounting_loop import AccountingLoop
from sandboxer.loop.results import PassResult
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import SnapshotBuilder, one_per_key
from sandboxer.manifests.events import event_object
from sandboxer.manifests.labels import SANDBOX_LABEL
from sandboxer.observability.logging import get_logger
from sandboxer.observability.metrics import LoopMetrics
from sandboxer.sandbox_rules import BudgetDecision, BudgetRequest

log = get_logger("sandboxer.loop")
OURS = {SANDBOX_LABEL: kopf.PRESENT}


def loop_settings(config: OperatorConfig) -> LoopSettings:
    return LoopSettings(
        interval=config.loop_interval,
        usage_refresh=timedelta(seconds=config.usage_refresh),
        budget_refresh=timedelta(seconds=config.budget_refresh),
        unknown_pod_grace=timedelta(seconds=config.unknown_pod_grace),
        close_grace=timedelta(seconds=config.hour_close_grace),
        no_budget=no_budget_policy(config.no_budget),
        checkpoint_interval=timedelta(seconds=config.checkpoint_interval),
        telemetry_retention=timedelta(seconds=config.telemetry_retention),
    )


# -- indexes (small values: what the loop reads) -------------------------------------------


def index_spec(*, name: str, spec: Mapping[str, Any], **_: Any) -> Any:
    return {name: dict(spec)}


def index_status(*, name: str, status: Mapping[str, Any], **_: Any) -> Any:
    """Node reports and budget statuses: both are read by name, status only."""
    return {name: dict(status)}


def index_namespace(*, name: str, labels: Mapping[str, str], **_: Any) -> Any:
    return {name: dict(labels)}


def index_pod_uid(*, uid: str, namespace: str, labels: Mapping[str, str], **_: Any) -> Any:
    return {uid: (namespace, labels[SANDBOX_LABEL])}


INDEX_NAMES = (
    "index_sandbox",
    "index_child_pod",  # the notebook pods' IPs, for Jupyter activity
    "index_pod_uid",
    "index_class",
    "index_budget",
    "index_ratecard",
    "index_report",
    "index_namespace",
    "index_budget_status",
)


class LedgerBudgetGate:
    """The admission budget check, on the accounting loop's latest figures.

    The leader decides from its loop; a standby hands the check to the leader (peer_gate.py),
    waiting a few seconds for one while the Lease changes hands, and refuses (nothing stored)
    when none answers: admitting unchecked would let a burst pass a cap.
    """

    def __init__(self, runner: LoopRunner) -> None:
        self.runner = runner

    @property
    def ready(self) -> bool:
        """After the leader's first pass (before it, running sandboxes and usage are not known),
        or on a standby when a leader is known to ask."""
        if self.runner.accounting is not None:
            return self.runner.passes > 0
        return self.runner.leader_url() is not None

    async def decide_here(self, request: BudgetRequest) -> BudgetDecision | None:
        """The decision of this replica's loop; None when it is not the leader."""
        accounting, indexes = self.runner.accounting, self.runner.indexes
        if accounting is None or indexes is None:
            return None
        # The running sandboxes and usage come from the last pass; rebuilding every
        # sandbox view per admission request would put O(sandboxes) on the webhook path.
        snap = self.runner.builder.policies(indexes, datetime.now(UTC))
        decision = accounting.admit(request, snap)
        if not decision.allowed and not request.dry_run:
            self.runner.metrics.admission_refusals_total.labels(
                owner=request.owner, reason=decision.reason or "Refused"
            ).inc()
        return decision

    async def check(self, request: BudgetRequest) -> BudgetDecision:
        runner = self.runner
        deadline = time.monotonic() + min(5.0, runner.config.lease_duration)
        while True:
            here = await self.decide_here(request)
            if here is not None:
                return here
            if runner.elector is None:
                return BudgetDecision(True)  # not started yet: the loop enforces once it runs
            url = runner.leader_url()
            if url is not None:
                key = peer_gate.peer_key(runner.config)
                if key is None:
                    return peer_gate.unavailable(
                        "this standby replica has no key to sign its question to the leader with"
                    )
                return await peer_gate.ask(await runner.http(), url, key, request)
            left = deadline - time.monotonic()
            if left <= 0:
                elector = runner.elector
                return peer_gate.unavailable(
                    f"no operator replica holds the leader Lease {elector.namespace}/"
                    f"{elector.name} yet"
                )
            await peer_gate.wait_changed(runner.elector.changed, left)


class LoopRunner:
    """Owns the accounting loop and the background task; kept in kopf's memo."""

    def __init__(self, config: OperatorConfig, kube: KubeClient) -> None:
        self.config = config
        self.kube = kube
        self.settings = loop_settings(config)
        self.metrics = LoopMetrics()
        self.builder = SnapshotBuilder()
        self.accounting: AccountingLoop | None = None
        self.indexes: Mapping[str, Any] | None = None
        self.passes = 0
        self._task: asyncio.Task[None] | None = None
        self._last_export: datetime | None = None
        self._http: aiohttp.ClientSession | None = None
        self.elector: LeaderElector | None = None
        self._campaign: asyncio.Task[None] | None = None
        self._ending = asyncio.Event()  # the term ends: finish the pass under way, start none
        self.jupyter = jupyter_activity.JupyterActivity(
            token_key(config), config.jupyter_interval or max(config.loop_interval, 30.0)
        )

    async def elect(self, indexes: Mapping[str, Any], annotations: Mapping[str, str]) -> None:
        """Campaign for the Lease; the loop runs while this replica holds it.

        The first attempt is made here, so a lone replica leads before its webhooks serve.
        """
        self.indexes = indexes
        config = self.config
        self.elector = LeaderElector(
            self.kube,
            name=config.lease_name,
            namespace=config.own_namespace or "default",
            on_start=self._lead,
            on_stop=self._step_down,
            identity=default_identity(config.webhook_port if config.dev else None),
            timings=LeaseTimings.scaled(config.lease_duration),
            annotations=annotations,
            on_change=lambda leading: self.on_leading(leading),
        )
        await self.elector.step()
        self._campaign = asyncio.create_task(self.elector.run(), name="sandboxer-election")

    def on_leading(self, leading: bool) -> None:
        """Hook for the operator's metrics (runner.py sets it)."""

    def leader_url(self) -> str | None:
        """Where another replica that leads answers budget checks (None: this one, or none)."""
        elector = self.elector
        if elector is None or elector.leading:
            return None
        return elector.leader_annotation(PEER_URL_ANNOTATION)

    async def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self._http

    async def _lead(self) -> None:
        assert self.config.ledger_url is not None
        self.accounting = AccountingLoop(open_store(self.config.ledger_url), self.settings)
        self.passes = 0
        self._ending = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="sandboxer-loop")
        log.info("Started accounting loop", ledger=self.config.ledger_url,
                 interval=self.settings.interval)  # fmt: skip

    async def _step_down(self) -> None:
        """End the term: let a pass under way finish (its ledger writes are checkpointed), but
        no longer than the margin between the renew deadline and the Lease duration, in which no
        successor can have started."""
        task, self._task = self._task, None
        self._ending.set()
        if task is not None:
            timings = LeaseTimings.scaled(self.config.lease_duration)
            margin = timings.duration - timings.renew_deadline - timings.retry_period
            done, _ = await asyncio.wait({task}, timeout=max(0.1, margin))
            if not done:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.accounting = None
        log.info("Stopped accounting loop")

    async def stop(self) -> None:
        """Shutdown: stop campaigning, end the term and hand the Lease over."""
        if self._campaign is not None:
            self._campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._campaign
        if self.elector is not None:
            await self.elector.release()
        elif self._task is not None:
            await self._step_down()
        if self._http is not None:
            await self._http.close()
        await self.jupyter.close()

    async def _run(self) -> None:
        while not self._ending.is_set():
            started = time.monotonic()
            try:
                await self.run_once(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except (KubeError, OSError, ValueError, RuntimeError) as exc:
                # One bad pass must not stop metering; the next pass retries from the ledger.
                log.error("Loop pass failed", error=str(exc), error_type=type(exc).__name__)
            elapsed = time.monotonic() - started
            self.metrics.pass_seconds.observe(elapsed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._ending.wait(), max(0.0, self.settings.interval - elapsed)
                )

    async def run_once(self, now: datetime) -> PassResult:
        assert self.accounting is not None and self.indexes is not None
        snap = self.builder.build(self.indexes, now)
        wanted = jupyter_activity.targets(snap, self.indexes.get("index_child_pod", {}))
        if wanted:
            snap.jupyter = await self.jupyter.refresh(wanted)
        result = await asyncio.to_thread(self.accounting.run_pass, snap)
        self.passes += 1
        await self._apply(result)
        await self._export(now)
        return result

    async def _apply(self, result: PassResult) -> None:
        m = self.metrics
        for hour in result.closed_hours:
            for row in hour.rows:
                team = row.team or row.namespace
                m.ledger_gpu_hours_total.labels(team=team).inc(row.allocated_gpu_hours)
                m.ledger_busy_gpu_hours_total.labels(team=team).inc(row.busy_gpu_hours)
        for team, reason, hours in result.reclaimed:
            m.reclaimed_gpu_hours_total.labels(team=team, reason=reason).inc(hours)
        for account in result.exhausted:
            m.budget_exhaustions_total.labels(
                budget=account.budget, subject=account.name or "shared"
            ).inc()
        for owner, seconds in result.gpu_wait_seconds.items():
            m.gpu_wait_seconds_total.labels(owner=owner).inc(seconds)
        for model in sorted(result.unpriced):
            log.warning("Charged zero: no RateCard price", gpu=model)
        for write in result.sandbox_writes:
            try:
                if write.status:
                    await self.kube.patch(
                        API_VERSION, "ExperimentSandbox", write.namespace, write.name,
                        {"status": write.status}, subresource="status",
                    )  # fmt: skip
                if write.suspend:
                    await self.kube.patch(
                        API_VERSION, "ExperimentSandbox", write.namespace, write.name,
                        {"spec": {"suspend": True}},
                    )  # fmt: skip
                    log.info(
                        "Suspended ExperimentSandbox",
                        sandbox=write.name,
                        namespace=write.namespace,
                        reason=write.status.get("suspendedReason"),
                    )
            except KubeError as exc:
                if exc.status != 404:  # deleted meanwhile: nothing to do
                    log.warning("Patch failed", sandbox=write.name, error=exc.message)
        if self.indexes is not None:
            for name, spec in one_per_key(self.indexes["index_budget"]).items():
                allowance = (spec.get("allowance") or {}).get("gpuHours")
                if allowance is not None:
                    m.budget_allowance_gpu_hours.labels(budget=name).set(float(allowance))
        for budget in result.budget_writes:
            try:
                await self.kube.patch(
                    API_VERSION, "ComputeBudget", None, budget.name, {"status": budget.status},
                    subresource="status",
                )  # fmt: skip
            except KubeError as exc:
                if exc.status != 404:
                    log.warning("Patch failed", budget=budget.name, error=exc.message)
            for subject in budget.status.get("subjects", []):
                who = subject.get("name") or "shared"
                m.budget_used_gpu_hours.labels(budget=budget.name, subject=who).set(
                    subject.get("usedGpuHours", 0.0)
                )
        now = datetime.now(UTC)
        for event in result.events:
            try:
                await self.kube.create(event_object(event, now, socket.gethostname()))
            except KubeError as exc:
                log.warning("Event not posted", reason=event.reason, error=exc.message)
        for note in result.notifications:
            await self._notify(note.url, note.payload)

    async def _notify(self, url: str, payload: Mapping[str, Any]) -> None:
        session = await self.http()
        try:
            async with session.post(url, json=payload) as resp:
                if resp.status >= 300:
                    log.warning("Notification refused", status=resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Notification failed", error=str(exc))

    def export_sink(self) -> str:
        """Where exports go: the configured sink, else `export/` under the ledger location."""
        if self.config.export_sink:
            return self.config.export_sink
        return f"{(self.config.ledger_url or '').rstrip('/')}/export"

    async def _export(self, now: datetime) -> None:
        if not self.config.export_enabled or self.accounting is None:
            return
        if self._last_export is not None and (
            (now - self._last_export).total_seconds() < self.config.export_interval
        ):
            return
        from sandboxer.chargeback.export import ExportError, export_period
        from sandboxer.chargeback.schedule import due_exports
        from sandboxer.chargeback.settings import ExportSettings

        settings = ExportSettings()
        due = due_exports(now, settings.close_grace, self._last_export)
        self._last_export = now
        for job in due:
            try:
                res = await asyncio.to_thread(
                    export_period, job.period, self.accounting.store, self.export_sink(),
                    set(self.config.export_formats), settings, None, job.final,
                )  # fmt: skip
            except (ExportError, OSError, ValueError) as exc:
                log.error("Export failed", period=job.period, error=str(exc))
                continue
            log.info("Exported billing period", period=res.period, rows=res.rows,
                     final=res.closed, manifest=res.manifest_key)  # fmt: skip


async def start_loop(*, memo: kopf.Memo, **kwargs: Any) -> None:
    runner: LoopRunner | None = memo.get("loop")
    if runner is None:
        return
    url = peer_gate.advertised_url(runner.config)
    notes = {PEER_URL_ANNOTATION: url} if url else {}
    await runner.elect({name: kwargs[name] for name in INDEX_NAMES}, notes)


async def stop_loop(*, memo: kopf.Memo, **_: Any) -> None:
    runner: LoopRunner | None = memo.get("loop")
    if runner is not None:
        await runner.stop()


def register(registry: kopf.OperatorRegistry) -> None:
    """Indexes the loop reads (the sandbox and class indexes come from sandboxes.py)."""
    g, v = GROUP, VERSION
    kopf.index(g, v, "gpunodereports", id="index_report", registry=registry)(index_status)
    kopf.index(g, v, "computebudgets", id="index_budget", registry=registry)(index_spec)
    kopf.index(g, v, "computebudgets", id="index_budget_status", registry=registry)(index_status)
    kopf.index(g, v, "ratecards", id="index_ratecard", registry=registry)(index_spec)
    kopf.index("v1", "namespaces", id="index_namespace", registry=registry)(index_namespace)
    kopf.index("v1", "pods", labels=OURS, id="index_pod_uid", registry=registry)(
        cast(Any, index_pod_uid)
    )
    kopf.on.startup(id="start-loop", registry=registry)(start_loop)
    kopf.on.cleanup(id="stop-loop", registry=registry)(stop_loop)
