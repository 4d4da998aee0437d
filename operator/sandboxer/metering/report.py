"""Build the `GPUNodeReport` status from the counter book and the latest device samples (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sandboxer.api.nodereport import GPUDevice, GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.api.types import Condition, set_condition
from sandboxer.metering.counters import PairCounters
from sandboxer.metering.probe import DeviceSample


def gpu_device(sample: DeviceSample) -> GPUDevice:
    return GPUDevice(
        uuid=sample.uuid,
        index=sample.index,
        model=sample.model,
        mig_profile=sample.mig_profile,
        parent_uuid=sample.parent_uuid,
        memory_total_bytes=sample.memory_total_bytes,
        memory_used_bytes=sample.memory_used_bytes,
        utilization_percent=sample.utilization_percent,
        utilization_signal=sample.utilization_signal,
        power_watts=sample.power_watts,
        processes=len(sample.processes),
        state=sample.state,
        message=sample.message,
    )


def pod_reports(pairs: Sequence[PairCounters]) -> list[PodReport]:
    """One entry per pod, GPUs sorted by UUID; pods sorted, so equal books give equal reports."""
    by_pod: dict[tuple[str, str, str], list[PairCounters]] = {}
    for pair in pairs:
        by_pod.setdefault((pair.pod.namespace, pair.pod.name, pair.pod.uid), []).append(pair)
    return [
        PodReport(
            uid=uid,
            namespace=namespace,
            name=name,
            gpus=[
                PodGPUCounters(
                    uuid=p.gpu_uuid,
                    allocated_seconds=round(p.allocated_seconds, 3),
                    busy_seconds=round(p.busy_seconds, 3),
                    energy_joules=round(p.energy_joules, 3),
                    peak_memory_bytes=p.peak_memory_bytes,
                    utilization_percent=p.utilization_percent,
                    last_active_at=p.last_active_at,
                )
                for p in sorted(group, key=lambda p: p.gpu_uuid)
            ],
        )
        for (namespace, name, uid), group in sorted(by_pod.items())
    ]


def build_status(
    *,
    node: str,
    epoch: str,
    sequence: int,
    at: datetime,
    devices: Sequence[DeviceSample],
    pairs: Sequence[PairCounters],
    sample_interval: float,
    report_interval: float,
    conditions: list[Condition] | None = None,
) -> GPUNodeReportStatus:
    return GPUNodeReportStatus(
        node=node,
        epoch=epoch,
        sequence=sequence,
        reported_at=at,
        sample_interval_seconds=sample_interval,
        report_interval_seconds=report_interval,
        gpus=[gpu_device(d) for d in devices],
        pods=pod_reports(pairs),
        conditions=conditions or [],
    )


def health_conditions(
    conditions: list[Condition],
    at: datetime,
    *,
    nvml_error: tuple[str, str] | None,
    kubelet_error: str | None,
    lost_gpus: Sequence[str],
) -> list[Condition]:
    """`NVMLAvailable`, `PodResourcesAvailable` and `GPUsHealthy`, moved only when they change."""
    if nvml_error is None:
        conditions = set_condition(conditions, "NVMLAvailable", "True", "Initialized", at=at)
    else:
        reason, message = nvml_error
        conditions = set_condition(conditions, "NVMLAvailable", "False", reason, message, at=at)
    if kubelet_error is None:
        conditions = set_condition(conditions, "PodResourcesAvailable", "True", "Listed", at=at)
    else:
        conditions = set_condition(
            conditions, "PodResourcesAvailable", "False", "ListFailed", kubelet_error, at=at
        )
    if lost_gpus:
        message = f"GPU lost: {', '.join(lost_gpus)}"
        conditions = set_condition(conditions, "GPUsHealthy", "False", "GPULost", message, at=at)
    else:
        conditions = set_condition(conditions, "GPUsHealthy", "True", "AllHealthy", at=at)
    return conditions
