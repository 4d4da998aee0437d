"""Every metric the Grafana dashboard queries is exported by the operator or the agent."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sandboxer.deploy.dashboard import DASHBOARD_METRICS
from sandboxer.metering.metrics import AgentCollector, AgentView
from sandboxer.metering.simulated import SimulatedNVML, make_gpus
from sandboxer.observability.metrics import LoopMetrics


def _names(registry: CollectorRegistry) -> set[str]:
    return {metric.name for metric in registry.collect()} | {
        sample.name for metric in registry.collect() for sample in metric.samples
    }


def test_dashboard_queries_only_exported_metric_names() -> None:
    operator = LoopMetrics()
    # Touch labelled series so collect() lists them.
    operator.reclaimed_gpu_hours_total.labels(team="t", reason="Idle").inc(0)
    operator.admission_refusals_total.labels(owner="o", reason="Exhausted").inc(0)
    operator.ledger_gpu_hours_total.labels(team="t").inc(0)
    operator.ledger_busy_gpu_hours_total.labels(team="t").inc(0)
    operator.budget_used_gpu_hours.labels(budget="b", subject="s").set(0)
    operator.budget_allowance_gpu_hours.labels(budget="b").set(1)
    exported = _names(operator.registry)
    devices = SimulatedNVML(make_gpus(1)).sample()
    view = AgentView(devices, [], {}, True, 1, 0, 1, 0, 1)
    agent = CollectorRegistry()
    agent.register(AgentCollector(lambda: view))
    exported |= _names(agent)
    missing = [m for m in DASHBOARD_METRICS if m not in exported]
    assert missing == [], f"dashboard queries metrics nobody exports: {missing}"
