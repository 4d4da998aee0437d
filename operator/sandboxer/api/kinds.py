"""The custom kinds of group sandboxer.io/v1alpha1: names, scope, models and printer columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sandboxer import API_VERSION, GROUP, VERSION
from sandboxer.api.budget import ComputeBudgetSpec, ComputeBudgetStatus
from sandboxer.api.nodereport import GPUNodeReportSpec, GPUNodeReportStatus
from sandboxer.api.ratecard import RateCardSpec, RateCardStatus
from sandboxer.api.sandbox import MAX_NAME_LENGTH, ExperimentSandboxSpec, ExperimentSandboxStatus
from sandboxer.api.sandboxclass import SandboxClassSpec, SandboxClassStatus
from sandboxer.api.types import Model


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    scope: Literal["Namespaced", "Cluster"]
    spec: type[Model]
    status: type[Model]
    description: str
    short_names: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    spec_required: bool = True
    name_max_length: int | None = None
    categories: tuple[str, ...] = ("sandboxer",)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def api_version(self) -> str:
        return API_VERSION

    @property
    def version(self) -> str:
        return VERSION

    @property
    def group(self) -> str:
        return GROUP


AGE = Column("Age", ".metadata.creationTimestamp", "date")

EXPERIMENT_SANDBOX = Kind(
    kind="ExperimentSandbox",
    plural="experimentsandboxes",
    scope="Namespaced",
    spec=ExperimentSandboxSpec,
    status=ExperimentSandboxStatus,
    description="A self-service GPU notebook (JupyterLab) owned by one engineer, metered "
    "against their ComputeBudget and reclaimed when its GPUs sit idle.",
    short_names=("esb", "sandbox"),
    name_max_length=MAX_NAME_LENGTH,
    columns=(
        Column("Phase", ".status.phase", description="Summary of the conditions."),
        Column("Class", ".spec.class"),
        Column("GPUs", ".spec.gpus", "integer"),
        Column("Owner", ".spec.owner"),
        Column("Idle", ".status.idleSince", "date", "How long every GPU has been idle."),
        Column(
            "Budget-Left",
            ".status.budget.remainingGpuHours",
            "number",
            "GPU-hours left on the owner's budget this period.",
        ),
        Column("URL", ".status.url"),
        AGE,
        Column("Node", ".status.node", priority=1),
        Column("Reason", ".status.suspendedReason", priority=1),
    ),
)

SANDBOX_CLASS = Kind(
    kind="SandboxClass",
    plural="sandboxclasses",
    scope="Cluster",
    spec=SandboxClassSpec,
    status=SandboxClassStatus,
    description="What a kind of sandbox is: image, GPU resource and model, limits, idle policy "
    "and lifetime. Defined by the platform team.",
    short_names=("sbc",),
    columns=(
        Column("GPU", ".spec.gpu.model"),
        Column("Resource", ".spec.gpu.resourceName"),
        Column("Max-GPUs", ".spec.maxGpus", "integer"),
        Column("Idle-After", ".spec.idle.after"),
        AGE,
    ),
)

COMPUTE_BUDGET = Kind(
    kind="ComputeBudget",
    plural="computebudgets",
    scope="Cluster",
    spec=ComputeBudgetSpec,
    status=ComputeBudgetStatus,
    description="An allowance of weighted GPU-hours (or money) per period for users, groups or "
    "namespaces, enforced at admission and while sandboxes run.",
    short_names=("cb", "budget"),
    columns=(
        Column("Scope", ".spec.scope"),
        Column("Period", ".status.period.name"),
        Column("Allowance", ".spec.allowance.gpuHours", "number"),
        Column("On-Exhausted", ".spec.onExhausted"),
        AGE,
    ),
)

GPU_NODE_REPORT = Kind(
    kind="GPUNodeReport",
    plural="gpunodereports",
    scope="Cluster",
    spec=GPUNodeReportSpec,
    status=GPUNodeReportStatus,
    description="Per-node GPU telemetry and per-pod usage counters, written by the metering "
    "agent on that node (status only).",
    short_names=("gnr",),
    spec_required=False,
    columns=(
        Column("Epoch", ".status.epoch"),
        Column("Reported", ".status.reportedAt", "date"),
        AGE,
    ),
)

RATE_CARD = Kind(
    kind="RateCard",
    plural="ratecards",
    scope="Cluster",
    spec=RateCardSpec,
    status=RateCardStatus,
    description="Effective-dated prices per GPU-hour per GPU model and MIG profile.",
    short_names=("ratecard",),
    columns=(Column("Currency", ".spec.currency"), AGE),
)

ALL_KINDS: tuple[Kind, ...] = (
    EXPERIMENT_SANDBOX,
    SANDBOX_CLASS,
    COMPUTE_BUDGET,
    GPU_NODE_REPORT,
    RATE_CARD,
)


def by_kind(kind: str) -> Kind:
    for k in ALL_KINDS:
        if k.kind == kind:
            return k
    raise KeyError(f"unknown kind {kind!r}; known: {', '.join(k.kind for k in ALL_KINDS)}")
