"""Every metric the Grafana dashboard queries is exported by the operator or the agent."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from sandboxer.controller.observed import SandboxCollector
from sandboxer.deploy.dashboard import PANELS, dashboard, queries
from sandboxer.metering.counters import PairCounters, PodRef
from sandboxer.metering.metrics import AgentCollector, AgentView
from sandboxer.metering.simulated import SimulatedNVML, make_gpus
from sandboxer.observability.metrics import LoopMetrics, OperatorMetrics

NAME = re.compile(r"\bsandboxer_[a-z_]+")


def _names(registry: CollectorRegistry) -> set[str]:
    return {sample.name for metric in registry.collect() for sample in metric.samples}


def test_dashboard_queries_only_exported_metric_names() -> None:
    loop = LoopMetrics()
    # Labelled series appear once touched.
    loop.reclaimed_gpu_hours_total.labels(team="t", reason="Idle").inc(0)
    loop.admission_refusals_total.labels(owner="o", reason="Exhausted").inc(0)
    loop.gpu_wait_seconds_total.labels(owner="o").inc(0)
    loop.budget_used_gpu_hours.labels(budget="b", subject="s").set(0)
    loop.budget_allowance_gpu_hours.labels(budget="b").set(1)
    operator = OperatorMetrics(loop.registry)
    operator.init_controller("experimentsandbox")
    operator.reconcile_time_seconds.labels(controller="experimentsandbox").observe(0.1)
    indexes = {
        "index_sandbox": {("ns", "nb"): [{"spec": {"owner": "alice", "class": "h100"}}]},
        "index_budget": {"team-ml": [{"period": "Weekly"}]},
    }
    loop.registry.register(SandboxCollector(indexes))
    exported = _names(loop.registry)
    devices = SimulatedNVML(make_gpus(1)).sample()
    now = datetime.now(UTC)
    pair = PairCounters(PodRef("ns", "nb-0"), devices[0].uuid, now, now, allocated_seconds=1)
    view = AgentView(devices, [pair], {}, True, 1, 0, 1, 0, 1, last_report_at=1.0)
    agent = CollectorRegistry()
    agent.register(AgentCollector(lambda: view))
    exported |= _names(agent)
    queried = {name for _, _, expr in queries() for name in NAME.findall(expr)}
    missing = sorted(queried - exported)
    assert missing == [], f"dashboard queries metrics nobody exports: {missing}"
    assert "sandboxer_gpu_allocated_seconds_total" in queried


def test_at_least_eight_panels_each_with_a_query_and_a_place() -> None:
    model = dashboard()
    assert len(PANELS) >= 8
    assert len({p["title"] for p in model["panels"]}) == len(model["panels"])
    spots = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in model["panels"]}
    assert len(spots) == len(model["panels"])  # no two panels on top of each other
    for panel in model["panels"]:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert "$" not in "".join(t["expr"] for t in panel["targets"])  # runs in Prometheus too


def test_sandbox_info_joins_on_namespace_and_statefulset_pod() -> None:
    indexes = {
        "index_sandbox": {("ml", "nb"): [{"spec": {"owner": "alice", "class": "h100"}}]},
        "index_namespace": {"ml": [{"sandboxer.io/team": "vision"}]},
    }
    [info] = SandboxCollector(indexes).collect()
    [sample] = info.samples
    assert sample.labels == {
        "namespace": "ml", "pod": "nb-0", "sandbox": "nb", "owner": "alice", "team": "vision",
        "class": "h100",
    }  # fmt: skip
