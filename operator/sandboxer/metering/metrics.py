"""The agent's Prometheus metrics, read from its state at scrape time (nothing kept per tick).

Names follow dcgm-exporter's fields where the meaning matches, under a `sandboxer_` prefix and
Prometheus units: DCGM_FI_DEV_GPU_UTIL -> `sandboxer_gpu_utilization`, DCGM_FI_DEV_FB_USED ->
`sandboxer_gpu_fb_used_bytes`, DCGM_FI_DEV_POWER_USAGE -> `sandboxer_gpu_power_usage_watts`,
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION -> `sandboxer_gpu_total_energy_consumption_joules`. Labels
mirror dcgm-exporter's `gpu`, `UUID`, `modelName`, `namespace`, `pod`. Per-pod usage counters
are `sandboxer_gpu_{allocated,busy}_seconds_total` and `sandboxer_gpu_energy_joules_total`; they
reset with the agent `epoch` (a new process), which Prometheus' rate() handles as a counter reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sandboxer.metering.counters import PairCounters
from sandboxer.metering.probe import DeviceSample

GPU_LABELS = ["gpu", "UUID", "modelName", "GPU_I_PROFILE", "namespace", "pod"]
_STATES = ("Healthy", "Lost", "Unsupported", "Unknown")


@dataclass
class AgentView:
    """What the collector reads; the agent fills it after every tick and report."""

    devices: Sequence[DeviceSample]
    pairs: Sequence[PairCounters]
    holders: dict[str, tuple[str, str]]  # device UUID -> (namespace, pod)
    nvml_up: bool
    samples: int
    sample_errors: int
    reports: int
    report_errors: int
    api_writes: int
    last_report_at: float | None = None  # Unix time of the last published GPUNodeReport


class AgentCollector(Collector):
    def __init__(self, view: Callable[[], AgentView]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        v = self._view()
        util = GaugeMetricFamily("sandboxer_gpu_utilization", "GPU utilization (in %).",
                                 labels=[*GPU_LABELS, "signal"])  # fmt: skip
        fb = GaugeMetricFamily("sandboxer_gpu_fb_used_bytes", "GPU memory used.", labels=GPU_LABELS)
        power = GaugeMetricFamily(
            "sandboxer_gpu_power_usage_watts", "GPU power draw.", labels=GPU_LABELS
        )
        energy = GaugeMetricFamily(
            "sandboxer_gpu_total_energy_consumption_joules",
            "GPU energy since the driver loaded.",
            labels=GPU_LABELS,
        )
        procs = GaugeMetricFamily(
            "sandboxer_gpu_processes", "Compute processes on the GPU.", labels=GPU_LABELS
        )
        state = GaugeMetricFamily(
            "sandboxer_gpu_state", "1 for the GPU's current state.", labels=["UUID", "state"]
        )
        for d in v.devices:
            namespace, pod = v.holders.get(d.uuid, ("", ""))
            labels = [
                str(d.index) if d.index is not None else "",
                d.uuid,
                d.model or "",
                d.mig_profile or "",
                namespace,
                pod,
            ]
            if d.utilization_percent is not None:
                util.add_metric([*labels, d.utilization_signal], d.utilization_percent)
            if d.memory_used_bytes is not None:
                fb.add_metric(labels, d.memory_used_bytes)
            if d.power_watts is not None:
                power.add_metric(labels, d.power_watts)
            if d.energy_millijoules is not None:
                energy.add_metric(labels, d.energy_millijoules / 1000.0)
            procs.add_metric(labels, len(d.processes))
            for s in _STATES:
                state.add_metric([d.uuid, s], 1.0 if d.state == s else 0.0)
        yield from (util, fb, power, energy, procs, state)
        yield from self._pairs(v.pairs)
        yield from self._agent(v)

    def _pairs(self, pairs: Sequence[PairCounters]) -> Iterator[Metric]:
        labels = ["namespace", "pod", "pod_uid", "UUID"]
        allocated = CounterMetricFamily(
            "sandboxer_gpu_allocated_seconds", "Seconds the pod held the GPU.", labels=labels
        )
        busy = CounterMetricFamily(
            "sandboxer_gpu_busy_seconds", "Utilization-weighted seconds.", labels=labels
        )
        energy = CounterMetricFamily(
            "sandboxer_gpu_energy_joules", "GPU energy while the pod held it.", labels=labels
        )
        peak = GaugeMetricFamily(
            "sandboxer_gpu_peak_memory_bytes", "Peak GPU memory of the pod.", labels=labels
        )
        active = GaugeMetricFamily(
            "sandboxer_gpu_last_active_timestamp_seconds",
            "When the pod was last active on the GPU.",
            labels=labels,
        )
        for p in pairs:
            values = [p.pod.namespace, p.pod.name, p.pod.uid, p.gpu_uuid]
            allocated.add_metric(values, p.allocated_seconds)
            busy.add_metric(values, p.busy_seconds)
            energy.add_metric(values, p.energy_joules)
            peak.add_metric(values, p.peak_memory_bytes)
            if p.last_active_at is not None:
                active.add_metric(values, p.last_active_at.timestamp())
        yield from (allocated, busy, energy, peak, active)

    def _agent(self, v: AgentView) -> Iterator[Metric]:
        up = GaugeMetricFamily("sandboxer_agent_nvml_up", "1 when NVML answered the last sample.")
        up.add_metric([], 1.0 if v.nvml_up else 0.0)
        yield up
        fresh = GaugeMetricFamily(
            "sandboxer_agent_last_report_timestamp_seconds",
            "When this node's GPUNodeReport was last published (time() minus it: freshness). "
            "The node is the scrape's `node` target label, as the chart relabels it.",
        )
        if v.last_report_at is not None:
            fresh.add_metric([], v.last_report_at)
        yield fresh
        for name, help_text, value in (
            ("sandboxer_agent_samples", "Samples taken.", v.samples),
            (
                "sandboxer_agent_sample_errors",
                "Samples where NVML was unavailable.",
                v.sample_errors,
            ),
            ("sandboxer_agent_reports", "GPUNodeReport updates published.", v.reports),
            (
                "sandboxer_agent_report_errors",
                "GPUNodeReport updates that failed.",
                v.report_errors,
            ),
            ("sandboxer_agent_api_writes", "Kubernetes API writes made.", v.api_writes),
        ):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], value)
            yield family


def agent_registry(view: Callable[[], AgentView]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(AgentCollector(view))
    return registry
