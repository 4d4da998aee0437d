"""GPUNodeReport: one per GPU node, written by that node's agent (status only, cluster-scoped).

Counters are monotonic within an `epoch`; the epoch changes whenever the agent restarts, so the
accounting loop can tell a reset from usage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sandboxer.api.types import Condition, Model, Timestamp

GPUState = Literal["Healthy", "Lost", "Unsupported", "Unknown"]
UtilizationSignal = Literal["SmActivity", "DutyCycle", "ProcessPresence", "MemoryActivity", "None"]


class GPUDevice(Model):
    uuid: str
    index: int | None = None
    model: str | None = None
    mig_profile: str | None = None
    parent_uuid: str | None = Field(default=None, description="Physical GPU of a MIG device.")
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_percent: float | None = None
    utilization_signal: UtilizationSignal = Field(
        default="None",
        description="What utilizationPercent measures: SmActivity (GPM, share of SMs busy "
        "since the last sample; Hopper and newer, MIG instances too), DutyCycle (share of the "
        "last second a kernel ran), ProcessPresence or MemoryActivity (MIG without GPM: 100 "
        "while a process or memory is held), None.",
    )
    power_watts: float | None = None
    processes: int = 0
    state: GPUState = "Healthy"
    message: str | None = None


class PodGPUCounters(Model):
    uuid: str = Field(description="GPU (or MIG device) UUID held by the pod.")
    allocated_seconds: float = Field(default=0.0, ge=0)
    busy_seconds: float = Field(default=0.0, ge=0, description="Utilization-weighted seconds.")
    energy_joules: float = Field(default=0.0, ge=0)
    peak_memory_bytes: int = Field(default=0, ge=0)
    utilization_percent: float | None = Field(default=None, description="Latest sample.")
    last_active_at: Timestamp | None = None


class PodReport(Model):
    uid: str
    namespace: str
    name: str
    gpus: list[PodGPUCounters] = Field(default_factory=list)


class GPUNodeReportStatus(Model):
    node: str | None = None
    epoch: str | None = Field(default=None, description="Changes whenever the agent restarts.")
    sequence: int = Field(default=0, ge=0, description="Report number within the epoch.")
    reported_at: Timestamp | None = None
    sample_interval_seconds: float | None = None
    report_interval_seconds: float | None = None
    gpus: list[GPUDevice] = Field(default_factory=list)
    pods: list[PodReport] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)


class GPUNodeReportSpec(Model):
    """Empty: the report is status only."""
