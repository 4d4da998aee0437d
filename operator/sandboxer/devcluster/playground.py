"""The playground: the dev cluster, the real operator and one real agent per simulated GPU node.

    async with Playground(nodes=2, gpus_per_node=8) as pg:
        ...  # kubectl --kubeconfig {pg.kubeconfig_path} --context alice apply -f sandbox.yaml

`sandboxer dev` serves one until interrupted; the demo, tests and benchmarks drive it directly.
The kubeconfig is written last, once the API, the nodes, the agents and admission are in place:
whoever waits for the file finds a playground that stamps owners and checks budgets. With
`external_operator` the operator is not started; the chart's webhook configurations point where
an operator of its own process (`sandboxer operator --dev`) will serve, and refuse until it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from sandboxer.devcluster import chartwebhooks, prometheus
from sandboxer.devcluster.cluster import Companion, DevCluster
from sandboxer.devcluster.devsettings import EXTENSION, DevSettings
from sandboxer.devcluster.kubeconfig import OPERATOR_ENTRY
from sandboxer.devcluster.nodeagents import NodeAgents
from sandboxer.devcluster.operatorthread import (
    OperatorThread,
    free_port,
    operator_token,
    playground_config,
)
from sandboxer.devcluster.store import ResKey

# Repository checkout (editable install): examples/ sits beside operator/.
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
ADMIN_KINDS = ("SandboxClass", "ComputeBudget", "RateCard")  # what `admin` applies at start
WEBHOOK_CONFIGS: tuple[ResKey, ...] = (
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"),
)


def example_objects(directory: Path) -> list[dict[str, Any]]:
    """Classes, budgets and rate cards from `directory/*.yaml` (sandboxes are the users' part)."""
    docs = (
        d for path in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text())
    )
    return [d for d in docs if isinstance(d, dict) and d.get("kind") in ADMIN_KINDS]


class Playground:
    """Async context manager: everything `sandboxer dev` runs, torn down on exit."""

    def __init__(
        self,
        nodes: int = 2,
        gpus_per_node: int = 8,
        gpu_model: str = "H100",
        *,
        sample_interval: float = 2.0,
        report_interval: float = 5.0,
        ledger_dir: Path | None = Path(".sandboxer/ledger"),
        loop_interval: float = 5.0,
        kubeconfig: Path | None = None,
        examples: Path | None = None,
        operator: bool = True,
        external_operator: bool = False,
        agents: bool = True,
        container_start: float = 0.5,
        operator_overrides: Mapping[str, Any] | None = None,
        companions: Sequence[Companion] = (),
        prometheus_targets: Path | None = None,
        jupyter: bool = False,
    ) -> None:
        self.prometheus_targets = prometheus_targets
        self.nodes, self.gpus_per_node, self.gpu_model = nodes, gpus_per_node, gpu_model
        self.ledger_dir, self.loop_interval = ledger_dir, loop_interval
        self.examples = examples
        self.cluster = DevCluster(container_start=container_start, jupyter=jupyter)
        for companion in companions:
            self.cluster.add_companion(companion)
        self._scratch = tempfile.TemporaryDirectory(prefix="sandboxer-dev-")
        scratch = Path(self._scratch.name)
        self.kubeconfig_path = kubeconfig or scratch / "kubeconfig"
        self.agents = (
            NodeAgents(
                self.cluster,
                scratch,
                sample_interval=sample_interval,
                report_interval=report_interval,
            )
            if agents
            else None
        )
        self._with_operator = operator and not external_operator
        self.external_operator = external_operator
        self.dev_settings: DevSettings | None = None  # what an external operator reads
        # OperatorConfig fields to set (e.g. the demo's short loop and refresh intervals).
        self.operator_overrides = dict(operator_overrides or {})
        self.operator: OperatorThread | None = None

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        # A previous run's file names a server that is gone: it must not pass for this one's.
        self.kubeconfig_path.unlink(missing_ok=True)
        cluster = self.cluster
        await cluster.start()
        cluster.load_crds()
        for index in range(self.nodes):
            cluster.add_gpu_node(f"gpu-node-{index}", gpus=self.gpus_per_node, model=self.gpu_model)
        if self.examples is not None and self.examples.is_dir():
            for obj in example_objects(self.examples):
                await cluster.apply(obj, user="admin")
        if self.ledger_dir is not None:
            self.ledger_dir.mkdir(parents=True, exist_ok=True)
        ledger = str(self.ledger_dir.resolve()) if self.ledger_dir is not None else None
        if self.agents is not None:
            await self.agents.start()
        extensions: dict[str, dict[str, Any]] = {}
        if self.external_operator:
            self.dev_settings = self._install_chart_webhooks(ledger)
            extensions[EXTENSION] = self.dev_settings.extension()
        elif self._with_operator:
            config = playground_config(cluster, ledger_url=ledger, loop_interval=self.loop_interval)
            config = dataclasses.replace(config, **self.operator_overrides)
            self.operator = OperatorThread(config)
            await self.operator.start()
            await self._webhooks_registered()
        if self.prometheus_targets is not None:
            prometheus.write(self.prometheus_targets, self.metrics_targets())
        # Last: the file's appearance is the signal that everything above is in place.
        cluster.write_kubeconfig(self.kubeconfig_path, extensions=extensions)

    def _install_chart_webhooks(self, ledger: str | None) -> DevSettings:
        """The chart's webhook configurations (failurePolicy Fail) aimed at the port the external
        operator will serve on; the operator's account and that port go into the kubeconfig."""
        operator_token(self.cluster)
        port = free_port()
        for key, obj in chartwebhooks.configurations("127.0.0.1", port):
            self.cluster.apiserver.put_system(key, obj)
        hint = chartwebhooks.not_running_hint(str(self.kubeconfig_path))
        for name in (chartwebhooks.MUTATE_WEBHOOK, chartwebhooks.VALIDATE_WEBHOOK):
            self.cluster.apiserver.webhooks.unreachable_hints[name] = hint
        return DevSettings(
            webhook_port=port,
            ledger_url=ledger,
            loop_interval=self.loop_interval,
            operator_context=OPERATOR_ENTRY,
            metrics_port=free_port(),
        )

    def metrics_targets(self) -> list[dict[str, Any]]:
        """Every /metrics endpoint the playground serves, as Prometheus file_sd groups."""
        if self.operator is not None:
            operator_port = self.operator.config.metrics_port
        else:  # the external operator serves where the kubeconfig tells it to
            operator_port = self.dev_settings.metrics_port if self.dev_settings else None
        agents = self.agents.nodes if self.agents is not None else {}
        ports = {name: n.metrics_port for name, n in agents.items() if n.metrics_port}
        return prometheus.file_sd(operator_port, ports)

    async def _webhooks_registered(self) -> None:
        """kopf creates its webhook configurations after it reports ready; users' first
        requests must already be stamped and checked."""
        store = self.cluster.apiserver.store

        def registered() -> bool:
            return all(
                any(o.get("webhooks") for o in store.iter(key, None)) for key in WEBHOOK_CONFIGS
            )

        async with asyncio.timeout(30):
            while not registered():  # noqa: ASYNC110 - kopf gives no signal for this
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Operator first (it must not see the API vanish), then agents and the cluster, which
        stop even when the operator does not (its error is raised afterwards)."""
        try:
            if self.operator is not None:
                operator, self.operator = self.operator, None
                await operator.stop()
        finally:
            if self.agents is not None:
                await self.agents.stop()
            await self.cluster.stop()
            with contextlib.suppress(OSError):
                self._scratch.cleanup()


def instructions(
    kubeconfig: Path, url: str, nodes: int, gpus: int, model: str, external_operator: bool = False
) -> str:
    kc = f"kubectl --kubeconfig {kubeconfig}"
    suspend = '\'{"spec":{"suspend":true}}\''
    operator = (
        [
            "  the operator is NOT running: sandboxes are refused until you start it, e.g.",
            f"    KUBECONFIG={kubeconfig} sandboxer operator --dev",
            "  (stop, kill and start it as often as you like; it finds its settings in the file)",
        ]
        if external_operator
        else ["  the operator runs in-process"]
    )
    return "\n".join(
        [
            f"Sandboxer playground is serving at {url}",
            f"  {nodes} simulated node(s), {gpus} x {model} GPU(s) and a metering agent each",
            *operator,
            "  example classes, budgets and rate card are applied",
            f"  kubeconfig written to {kubeconfig}",
            "  contexts: admin (cluster-admin, namespace default), alice and carol (group and",
            "  namespace team-ml), bob (group and namespace team-vision)",
            "",
            "Try:",
            f"  {kc} --context alice apply -f examples/sandbox.yaml",
            f"  {kc} --context alice wait --for=condition=Ready esb/my-notebook",
            f"  {kc} --context alice get esb",
            f"  {kc} --context alice annotate esb/my-notebook sim.sandboxer.io/gpu-utilization=80",
            f"  {kc} --context alice patch esb/my-notebook --type merge -p {suspend}",
            f"  {kc} get gpunodereports -o yaml",
            f"  {kc} get computebudgets",
            "",
            "No RBAC is evaluated yet: every user may do everything. Press Ctrl-C to stop.",
        ]
    )


async def serve(
    kubeconfig: Path,
    nodes: int = 2,
    gpus_per_node: int = 8,
    gpu_model: str = "H100",
    *,
    sample_interval: float = 2.0,
    report_interval: float = 5.0,
    ledger_dir: Path = Path(".sandboxer/ledger"),
    external_operator: bool = False,
    stop: asyncio.Event | None = None,
    echo: Callable[[str], None] = print,
    prometheus_targets: Path | None = None,
    jupyter: bool = False,
) -> None:
    # One access-log line per agent report and kubectl call would bury the operator's lines.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    async with Playground(
        nodes,
        gpus_per_node,
        gpu_model,
        sample_interval=sample_interval,
        report_interval=report_interval,
        ledger_dir=ledger_dir,
        kubeconfig=kubeconfig,
        examples=EXAMPLES,
        external_operator=external_operator,
        prometheus_targets=prometheus_targets,
        jupyter=jupyter,
    ) as pg:
        echo(
            instructions(
                kubeconfig, pg.cluster.url, nodes, gpus_per_node, gpu_model, external_operator
            )
        )
        if prometheus_targets is not None:
            echo(f"  Prometheus file_sd targets written to {prometheus_targets}")
        await (stop or asyncio.Event()).wait()
