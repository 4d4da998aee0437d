"""ComputeBudget: GPU-hours (or money) per person, group or namespace per period."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sandboxer.api.types import Condition, DNSLabel, Duration, Model, Timestamp


class Subject(Model):
    kind: Literal["User", "Group", "Namespace"] = Field(
        description="User (authenticated user name), Group, or Namespace."
    )
    name: str = Field(min_length=1, max_length=253)


class Allowance(Model):
    gpu_hours: float | None = Field(
        default=None, ge=0, description="Billing-weighted GPU-hours per period."
    )
    amount: float | None = Field(
        default=None, ge=0, description="Money per period, in `currency`, priced by the rate card."
    )
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _one_unit(self) -> Allowance:
        if (self.gpu_hours is None) == (self.amount is None):
            raise ValueError("allowance needs exactly one of gpuHours or amount")
        if self.amount is not None and self.currency is None:
            raise ValueError("allowance.amount needs allowance.currency (e.g. USD)")
        return self


class Notify(Model):
    webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Slack-compatible incoming webhook for warnings and exhaustion.",
    )


class ComputeBudgetSpec(Model):
    subjects: list[Subject] = Field(min_length=1, max_length=1000)
    scope: Literal["PerSubject", "Shared"] = Field(
        default="PerSubject",
        description="PerSubject: each subject gets the allowance; Shared: one pool for all.",
    )
    period: Literal["Monthly", "Weekly"] = Field(
        default="Monthly", description="Budget period, on UTC boundaries (weeks start Monday)."
    )
    allowance: Allowance
    max_concurrent_gpus: int | None = Field(
        default=None, ge=0, description="Most GPUs held at once (per subject, or in total)."
    )
    allowed_classes: list[DNSLabel] = Field(
        default_factory=list, description="SandboxClasses this budget pays for; empty means all."
    )
    warn_at: list[int] = Field(
        default_factory=lambda: [80, 95],
        description="Percentages of the allowance at which to warn.",
    )
    on_exhausted: Literal["Suspend", "DenyNew", "Notify"] = Field(
        default="Suspend",
        description="Suspend running sandboxes (keeping storage), only DenyNew, or only Notify.",
    )
    min_runtime: Duration = Field(
        default="1h",
        description="Refuse a start or resume when what is left would last less than this at "
        "the sandbox's rate plus what the account's running sandboxes burn; 0s turns the check "
        "off.",
    )
    cost_center: str | None = Field(default=None, max_length=128)
    team: str | None = Field(default=None, max_length=128)
    notify: Notify | None = None

    @model_validator(mode="after")
    def _warn_range(self) -> ComputeBudgetSpec:
        bad = [w for w in self.warn_at if not 0 < w < 100]
        if bad:
            raise ValueError(f"warnAt values must be between 1 and 99 percent, got {bad}")
        return self


class SubjectUsage(Model):
    kind: str
    name: str
    used_gpu_hours: float = 0.0
    remaining_gpu_hours: float | None = None
    used_amount: float | None = None
    running_gpus: int = 0
    projected_exhaustion: Timestamp | None = None
    refusals: int = 0
    exhaustions: int = 0
    gpu_wait_seconds: float = 0.0
    # What was announced this period, so a restarted or new leader neither repeats nor skips.
    warned: list[int] = Field(
        default_factory=list, description="warnAt thresholds already announced in this period."
    )
    announced_exhausted: bool = Field(
        default=False, description="Exhaustion was announced (and acted on) in this period."
    )


class BudgetPeriod(Model):
    name: str = Field(description="e.g. 2026-11 or 2026-W48.")
    start: Timestamp
    end: Timestamp


class ComputeBudgetStatus(Model):
    period: BudgetPeriod | None = None
    subjects: list[SubjectUsage] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
