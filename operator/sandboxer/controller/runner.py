"""Run the operator: in its own process (`sandboxer operator`) or inside the playground."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable

import aiohttp.web
import kopf
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from sandboxer.controller import admission, loop_runner, observed, peer_gate, sandboxes, startup
from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.kube import KubeClient
from sandboxer.observability.metrics import OperatorMetrics
from sandboxer.sandbox_rules import AllowAllBudgets


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A fresh registry per run, so operators can run one after another (tests, playground).

    Admission handlers only with a webhook server: kopf refuses handlers it cannot serve.
    """
    registry = kopf.OperatorRegistry()
    startup.register(registry)
    sandboxes.register(registry)
    observed.register(registry)
    if config.ledger_url:
        loop_runner.register(registry)
    if config.webhook_port is not None:
        admission.register(registry)
    return registry


async def run_operator(
    config: OperatorConfig,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run until stop_flag is set (or cancelled); ready_flag is set once kopf is up.

    Give it an event loop of its own (a thread) when an API server lives in the same process:
    on exit kopf cancels every task started while it ran, the server's request tasks included.
    threading.Event flags work across the two loops.
    """
    connection = startup.resolve_connection(config)
    kube = KubeClient(connection)
    memo = kopf.Memo(config=config, connection=connection, kube=kube)
    if config.ledger_url:
        runner = memo["loop"] = loop_runner.LoopRunner(config, kube)
        if isinstance(config.budget_gate, AllowAllBudgets):
            config.budget_gate = loop_runner.LedgerBudgetGate(runner)
    # Operator metrics always; the loop's (with --ledger) in the same registry.
    running: loop_runner.LoopRunner | None = memo.get("loop")
    registry = running.metrics.registry if running else CollectorRegistry()
    memo["metrics"] = metrics = OperatorMetrics(registry)
    routes: list[Callable[[aiohttp.web.Application], None]] = []
    if running is not None:
        leader = metrics.leader_election_master_status.labels(name=config.lease_name)
        leader.set(0)
        running.on_leading = lambda leading: leader.set(1 if leading else 0)  # type: ignore[method-assign]
        if isinstance(config.budget_gate, loop_runner.LedgerBudgetGate):
            gate = config.budget_gate
            # The leader answers the budget checks standby replicas hand over (peer_gate.py).
            routes.append(
                lambda app: peer_gate.add_route(
                    app, lambda: peer_gate.peer_key(config), gate.decide_here
                )
            )
    port = config.metrics_port
    server = await serve_metrics(registry, config.metrics_host, port, routes) if port else None
    try:
        await kopf.operator(
            registry=build_registry(config),
            memo=memo,
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
            standalone=not config.peering,
            peering_name=config.peering_name if config.peering else None,  # set = mandatory
            # HA: distinct random priorities, so one replica leads (equal ones freeze all).
            priority=random.randint(1, 1_000_000) if config.peering else 0,
            liveness_endpoint=config.liveness_endpoint,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        if server is not None:
            await server.cleanup()
        await kube.close()


async def serve_metrics(
    registry: CollectorRegistry,
    host: str,
    port: int,
    routes: list[Callable[[aiohttp.web.Application], None]] | None = None,
) -> aiohttp.web.AppRunner:
    """/metrics on the operator's loop, stopped with it (prometheus_client's own server is a
    thread that outlives the operator: several runs per process would collide); `routes` add
    the leader's peer endpoint."""

    async def metrics(_: aiohttp.web.Request) -> aiohttp.web.Response:
        body = generate_latest(registry)
        return aiohttp.web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = aiohttp.web.Application()
    app.router.add_get("/metrics", metrics)
    for add in routes or ():
        add(app)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, host, port).start()
    return runner
