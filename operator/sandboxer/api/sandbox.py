"""ExperimentSandbox: one engineer's GPU notebook (namespaced)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sandboxer.api.types import (
    Condition,
    DNSLabel,
    Duration,
    Model,
    Quantity,
    Timestamp,
)

SuspendedReason = Literal[
    "User", "Idle", "BudgetExhausted", "Lifetime", "BudgetRefused", "StartFailed"
]
Phase = Literal["Pending", "Provisioning", "Ready", "Suspending", "Suspended", "Failed"]

# StatefulSets add a controller-revision-hash label "<name>-<10 chars>", which must stay <= 63.
MAX_NAME_LENGTH = 52


class SandboxResources(Model):
    cpu: Quantity | None = Field(default=None, description="CPU request (default: class per GPU).")
    memory: Quantity | None = Field(
        default=None, description="Memory request (default: class per GPU)."
    )


class SandboxStorage(Model):
    size: Quantity | None = Field(
        default=None, description="Workspace volume size; may grow, never shrink."
    )


class SandboxIdle(Model):
    after: Duration | None = Field(
        default=None, description="Idle window for this sandbox, within the class's bounds."
    )
    disabled: bool = Field(
        default=False, description="Opt out of idle reclaim (only where the class allows it)."
    )


class EnvVar(Model):
    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)
    value: str = Field(default="", max_length=32768)


class ExperimentSandboxSpec(Model):
    class_: DNSLabel = Field(
        alias="class", description="Name of the SandboxClass this sandbox is made from."
    )
    gpus: int = Field(
        default=1,
        ge=0,
        le=64,
        description="GPUs (or MIG slices, for a MIG class) to attach; at most the class's maxGpus.",
    )
    image: str | None = Field(
        default=None, max_length=512, description="Notebook image (default: the class's)."
    )
    resources: SandboxResources | None = None
    storage: SandboxStorage | None = None
    suspend: bool = Field(
        default=False, description="True scales to zero and keeps the workspace volume."
    )
    idle: SandboxIdle | None = None
    lifetime: Duration | None = Field(
        default=None, description="Suspend after running this long (within the class maximum)."
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    owner: str | None = Field(
        default=None,
        max_length=253,
        description="Set by the admission webhook from the authenticated user; cannot be changed.",
    )


class GPUAssignment(Model):
    uuid: str
    model: str | None = None
    mig_profile: str | None = None


class SandboxUsage(Model):
    gpu_hours: float = Field(default=0.0, description="Allocated GPU-hours (billing-weighted).")
    busy_gpu_hours: float = Field(default=0.0, description="Utilization-weighted GPU-hours.")
    cost: float = Field(default=0.0, description="Cost to date in the rate card's currency.")
    currency: str | None = None
    utilization: float | None = Field(
        default=None, description="Mean GPU utilization (percent) in the last report."
    )
    last_active_at: Timestamp | None = None


class SandboxBudget(Model):
    name: str
    remaining_gpu_hours: float | None = None
    period: str | None = None


class ExperimentSandboxStatus(Model):
    conditions: list[Condition] = Field(default_factory=list)
    phase: Phase | None = Field(default=None, description="Summary for printing; use conditions.")
    url: str | None = None
    node: str | None = None
    gpus: list[GPUAssignment] = Field(default_factory=list)
    usage: SandboxUsage | None = None
    suspended_reason: SuspendedReason | None = None
    budget: SandboxBudget | None = None
    observed_generation: int | None = None
    started_at: Timestamp | None = Field(
        default=None,
        description="When the current run first became Ready; only a suspension ends a run. "
        "maxLifetime counts from here.",
    )
    idle_since: Timestamp | None = Field(
        default=None,
        description="Where the idle window starts: since when every GPU has been idle (unset "
        "while busy). A restarted operator continues the window from here.",
    )
    warned_at: Timestamp | None = Field(
        default=None,
        description="When the idle or lifetime warning went out (unset once withdrawn); a "
        "restarted operator does not warn again.",
    )
    reclaim_at: Timestamp | None = Field(
        default=None,
        description="When the sandbox will be reclaimed if it stays idle (set with the warning).",
    )
