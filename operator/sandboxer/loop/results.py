"""What one pass decides: status patches, suspensions, Events and notifications (plain data).

The controller applies a `PassResult`; the loop itself never calls the Kubernetes API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sandboxer.api.types import ConditionStatus
from sandboxer.budgets.matching import Account
from sandboxer.ledger.hourly import ClosedHour

if TYPE_CHECKING:
    from sandboxer.loop.snapshot import SandboxView

SuspendReason = Literal["Idle", "BudgetExhausted", "Lifetime", "StartFailed"]
CondIntent = tuple[str, ConditionStatus, str, str]  # type, status, reason, message
Suspends = dict[str, tuple[SuspendReason, str]]  # sandbox uid -> reason, message
Conditions = dict[str, list[CondIntent]]  # sandbox uid -> conditions to set


@dataclass(frozen=True, slots=True)
class SandboxWrite:
    namespace: str
    name: str
    status: dict[str, Any]  # merge patch of .status (may be empty)
    suspend: bool = False  # also set spec.suspend: true (after the status patch)


@dataclass(frozen=True, slots=True)
class BudgetWrite:
    name: str
    status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventIntent:
    kind: Literal["ExperimentSandbox", "ComputeBudget"]
    namespace: str | None
    name: str
    uid: str
    type: Literal["Normal", "Warning"]
    reason: str
    message: str

    @classmethod
    def about(
        cls, sb: SandboxView, type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> EventIntent:
        return cls("ExperimentSandbox", sb.namespace, sb.name, sb.uid, type, reason, message)


@dataclass(frozen=True, slots=True)
class NotifyIntent:
    url: str
    payload: dict[str, Any]


@dataclass(slots=True)
class PassResult:
    sandbox_writes: list[SandboxWrite] = field(default_factory=list)
    budget_writes: list[BudgetWrite] = field(default_factory=list)
    events: list[EventIntent] = field(default_factory=list)
    notifications: list[NotifyIntent] = field(default_factory=list)
    folded_reports: int = 0
    deferred_reports: int = 0
    closed_hours: list[ClosedHour] = field(default_factory=list)
    reclaimed: list[tuple[str, str, float]] = field(default_factory=list)  # team, reason, hours
    exhausted: list[Account] = field(default_factory=list)  # accounts that ran out this pass
    gpu_wait_seconds: dict[str, float] = field(default_factory=dict)  # owner -> seconds
    unpriced: set[str] = field(default_factory=set)
