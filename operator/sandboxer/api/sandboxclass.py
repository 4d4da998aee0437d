"""SandboxClass: what a kind of sandbox may be (cluster-scoped, set by the platform team)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sandboxer.api.types import Duration, Model, Quantity, parse_duration


class GPUSpec(Model):
    resource_name: str = Field(
        default="nvidia.com/gpu",
        pattern=r"^nvidia\.com/(gpu|mig-[0-9]+g\.[0-9]+gb(\.[a-z0-9+]+)?)$",
        description="Extended resource requested per GPU: nvidia.com/gpu, or a MIG profile such "
        "as nvidia.com/mig-1g.10gb.",
    )
    model: str = Field(
        min_length=1, max_length=64, description="GPU model for billing and display, e.g. H100."
    )
    mig_profile: str | None = Field(
        default=None,
        pattern=r"^[0-9]+g\.[0-9]+gb(\.[a-z0-9+]+)?$",
        description="MIG profile (e.g. 1g.10gb) when the class hands out MIG slices.",
    )
    billing_weight: float = Field(
        default=1.0,
        gt=0,
        le=16,
        description="GPU-hours charged per hour of one device of this class (a full H100 = 1.0, "
        "a 1g MIG slice = 1/7).",
    )


class ResourceDefaults(Model):
    cpu_per_gpu: Quantity = Field(default="8", description="CPU requested per GPU by default.")
    memory_per_gpu: Quantity = Field(
        default="64Gi", description="Memory requested per GPU by default."
    )
    storage: Quantity = Field(default="100Gi", description="Workspace volume size by default.")


class ResourceLimits(Model):
    max_cpu: Quantity | None = Field(default=None, description="Most CPU a sandbox may request.")
    max_memory: Quantity | None = Field(
        default=None, description="Most memory a sandbox may request."
    )
    max_storage: Quantity | None = Field(
        default=None, description="Largest workspace volume a sandbox may ask for."
    )


class IdlePolicy(Model):
    after: Duration = Field(
        default="1h", description="Reclaim a sandbox whose GPUs were idle this long."
    )
    threshold: int = Field(
        default=5,
        ge=0,
        le=100,
        description="GPU duty cycle (percent) at or below which a GPU counts as idle.",
    )
    warn_before: Duration = Field(
        default="15m", description="Warn (condition, Event, notification) this long before reclaim."
    )
    max_after: Duration | None = Field(
        default=None,
        description="Longest idle.after a sandbox may set for itself; unset means the class's "
        "after is also the maximum.",
    )
    allow_opt_out: bool = Field(
        default=False, description="Whether a sandbox may turn idle reclaim off for itself."
    )
    count_processes: bool = Field(
        default=False,
        description="Also count a GPU with a compute process as busy at low utilization. Off by "
        "default: an idle notebook keeps its CUDA context (a process) while doing nothing, so "
        "with this on such a notebook is never reclaimed.",
    )
    use_jupyter_activity: bool = Field(
        default=False,
        description="Also require no Jupyter activity during the window: the operator reads "
        "each notebook's /api/status last_activity (needs the chart's token key). A sandbox "
        "without GPUs is then judged by Jupyter alone; without a reading it is never "
        "idle-reclaimed.",
    )

    @model_validator(mode="after")
    def _warn_fits(self) -> IdlePolicy:
        if parse_duration(self.warn_before) >= parse_duration(self.after):
            raise ValueError(
                f"idle.warnBefore ({self.warn_before}) must be shorter than idle.after "
                f"({self.after})"
            )
        return self


class Toleration(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Expose(Model):
    kind: Literal["None", "Ingress", "HTTPRoute"] = Field(
        default="None",
        description="Publish the notebook through an Ingress or a Gateway API HTTPRoute.",
    )
    host: str | None = Field(
        default=None,
        description="Host name template; {name} and {namespace} are replaced, e.g. "
        "{name}.{namespace}.notebooks.example.com.",
    )
    ingress_class_name: str | None = None
    gateway_name: str | None = Field(default=None, description="Parent Gateway for HTTPRoute.")
    gateway_namespace: str | None = None


class SandboxClassSpec(Model):
    image: str = Field(min_length=1, description="Default notebook image.")
    allowed_images: list[str] = Field(
        default_factory=list,
        description="Image patterns (fnmatch) sandboxes may ask for; empty allows only `image`.",
    )
    gpu: GPUSpec
    max_gpus: int = Field(default=8, ge=0, le=64, description="Most GPUs one sandbox may hold.")
    defaults: ResourceDefaults = Field(default_factory=ResourceDefaults)
    limits: ResourceLimits = Field(default_factory=ResourceLimits)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    priority_class_name: str | None = None
    scheduler_name: str | None = None
    queue_name: str | None = Field(
        default=None, description="Kueue LocalQueue name (label kueue.x-k8s.io/queue-name)."
    )
    storage_class_name: str | None = None
    idle: IdlePolicy = Field(default_factory=IdlePolicy)
    max_lifetime: Duration | None = Field(
        default=None, description="Suspend sandboxes running longer than this (off when unset)."
    )
    startup_timeout: Duration = Field(
        default="10m",
        description="Suspend a sandbox (suspendedReason StartFailed) whose pod is scheduled, and "
        "so holds its GPUs, but whose notebook has not been Ready for this long, e.g. a "
        "container in CrashLoopBackOff or ImagePullBackOff. Counted from when the pod was "
        "scheduled or the notebook was last Ready, whichever is later; 0s turns it off.",
    )
    expose: Expose = Field(default_factory=Expose)


class SandboxClassStatus(Model):
    sandboxes: int | None = Field(default=None, description="Sandboxes using this class.")
