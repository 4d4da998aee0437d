"""Admit or refuse a new or resumed sandbox against every budget that applies to its owner.

All applicable accounts must allow (see `matching`). Each one checks, in order: the class is one
the budget pays for; the owner's running GPUs plus the new ones stay within maxConcurrentGpus; the
allowance is not used up; and what is left lasts at least the budget's `minRuntime` at the
sandbox's rate plus what the account's running sandboxes already burn, so nobody starts a
4-GPU notebook that would be suspended a few minutes later.
A refusal names the person, the budget, used and remaining, and what would fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sandboxer.api.budget import Allowance, ComputeBudgetSpec, Subject
from sandboxer.api.types import parse_duration
from sandboxer.budgets.matching import Account, Budget, Person, applicable, pays_for
from sandboxer.budgets.periods import Period, PeriodKind, period_at
from sandboxer.budgets.status import (
    GPU_HOURS,
    AccountStatus,
    FrictionBook,
    RunningSandbox,
    UsageSlice,
    account_statuses,
)

DEFAULT_BUDGET_NAME = "default"

Reason = Literal[
    "Admitted", "NoBudget", "ClassNotAllowed", "ConcurrencyLimit", "BudgetExhausted",
    "InsufficientBudget",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    person: Person
    name: str
    sandbox_class: str
    gpu_model: str
    mig_profile: str | None
    gpus: int
    billing_weight: float
    hourly_cost: float = 0.0  # contracted price of all its GPUs per hour (money budgets)

    @property
    def shape(self) -> str:
        model = f"{self.gpu_model} {self.mig_profile}" if self.mig_profile else self.gpu_model
        return f"{self.gpus}\N{MULTIPLICATION SIGN}{model}"  # e.g. 4 x H100, no spaces


@dataclass(frozen=True, slots=True)
class NoBudgetPolicy:
    """What happens to an owner no ComputeBudget names: refuse, or a default allowance."""

    action: Literal["Deny", "DefaultAllowance"] = "Deny"
    gpu_hours: float = 0.0
    period: PeriodKind = "Monthly"
    max_concurrent_gpus: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    message: str


def no_budget_policy(text: str) -> NoBudgetPolicy:
    """`deny` or `allowance:<gpu-hours>` (SANDBOXER_NO_BUDGET)."""
    if text == "deny":
        return NoBudgetPolicy("Deny")
    if text.startswith("allowance:"):
        try:
            hours = float(text.split(":", 1)[1])
        except ValueError:
            hours = -1.0
        if hours >= 0:
            return NoBudgetPolicy("DefaultAllowance", gpu_hours=hours)
    raise ValueError(
        f"invalid no-budget policy {text!r}: use 'deny' or 'allowance:<gpu-hours>', "
        "e.g. allowance:10"
    )


def with_default(
    budgets: Sequence[Budget], person: Person, policy: NoBudgetPolicy, applicable: bool
) -> list[Budget]:
    """Add the implicit default budget for `person` when none applies and the policy gives one."""
    if applicable or policy.action != "DefaultAllowance":
        return list(budgets)
    spec = ComputeBudgetSpec(
        subjects=[Subject(kind="User", name=person.user)],
        period=policy.period,
        allowance=Allowance(gpu_hours=policy.gpu_hours),
        max_concurrent_gpus=policy.max_concurrent_gpus,
        on_exhausted="DenyNew",
    )
    return [*budgets, Budget(DEFAULT_BUDGET_NAME, spec)]


def checks_for(
    budgets: Sequence[Budget],
    person: Person,
    usage_in: Callable[[Period], Iterable[UsageSlice]],
    running: Sequence[RunningSandbox],
    groups_of: Mapping[str, frozenset[str]],
    now: datetime,
    *,
    policy: NoBudgetPolicy | None = None,
    friction: FrictionBook | None = None,
) -> list[tuple[Budget, AccountStatus]]:
    """Every (budget, account status) that must allow a sandbox of `person` at `now`.

    `usage_in(period)` gives the usage slices of a period (closed ledger rows plus open hours;
    the caller caches them per period name). Budgets may have different periods.
    """
    found = applicable(budgets, person)
    if not found and policy is not None:
        found = applicable(with_default(budgets, person, policy, applicable=False), person)
    out: list[tuple[Budget, AccountStatus]] = []
    for budget, account in found:
        period = period_at(budget.spec.period, now)
        statuses = account_statuses(
            budget, period, usage_in(period), running, groups_of, now, friction, [account]
        )
        out.append((budget, statuses[account]))
    return out


def decide(
    request: SandboxRequest,
    checks: Sequence[tuple[Budget, AccountStatus]],
) -> Decision:
    """`checks`: every applicable (budget, account status), default budget included."""
    if not checks:
        who = request.person
        groups = ", ".join(sorted(who.groups)) or "none"
        return Decision(
            False,
            "NoBudget",
            f"no ComputeBudget covers {who.user} (groups: {groups}) in namespace "
            f"{who.namespace}; ask the platform team to add you to a budget",
        )
    refusals: list[tuple[Reason, str]] = []
    for budget, status in checks:
        refusal = _check(request, budget.spec, status)
        if refusal is not None:
            refusals.append(refusal)
    tightest = min((st for _, st in checks), key=lambda st: _runtime_hours(request, st))
    if not refusals:
        return Decision(True, "Admitted", _admitted(request, tightest))
    reason, first = refusals[0]
    extra = [msg for _, msg in refusals[1:]]
    message = first + "".join(f". Also: {m}" for m in extra)
    return Decision(False, reason, message)


def _check(
    req: SandboxRequest, spec: ComputeBudgetSpec, st: AccountStatus
) -> tuple[Reason, str] | None:
    owners = f"ask the owners of {st.account.budget}"
    if not pays_for(spec, req.sandbox_class):
        allowed = ", ".join(spec.allowed_classes)
        return "ClassNotAllowed", (
            f"budget {st.account.budget} does not pay for class {req.sandbox_class} "
            f"(allowed: {allowed}); use one of those classes or {owners}"
        )
    if req.gpus == 0:
        return None
    who = _who(req, st.account)
    limit = spec.max_concurrent_gpus
    if limit is not None and st.running_gpus + req.gpus > limit:
        room = max(0, limit - st.running_gpus)
        hint = f"try gpus: {room}" if room else "suspend a running sandbox"
        return "ConcurrencyLimit", (
            f"{who} holds {st.running_gpus} of the {limit} GPUs budget "
            f"{st.account.budget} allows at once (maxConcurrentGpus); {req.shape} would make "
            f"{st.running_gpus + req.gpus}; {hint} or {owners}"
        )
    left = _left(st)
    if st.exhausted:
        return "BudgetExhausted", (
            f"{left}; it renews on {st.period.end:%Y-%m-%d} (UTC); {owners} for a top-up"
        )
    least = parse_duration(spec.min_runtime).total_seconds() / 3600
    runtime = _runtime_hours(req, st)
    if runtime < least:
        # The largest request that still lasts `least` beside what already runs.
        per_gpu = _rate(req, st) / req.gpus
        fits = math.floor((st.remaining / least - st.burn_per_hour) / per_gpu) if per_gpu else 0
        hint = f"try gpus: {fits} or {owners}" if fits >= 1 else f"{owners} for a top-up"
        beside = _running_phrase(st)
        return "InsufficientBudget", (
            f"{left}; {req.shape}{beside} would use it in {human_hours(runtime)}, under the "
            f"budget's minRuntime of {spec.min_runtime}; {hint}"
        )
    return None


def _running_phrase(st: AccountStatus) -> str:
    """What already burns the account, so the hint's arithmetic is visible."""
    if st.burn_per_hour <= 0:
        return ""
    return f" beside the {st.running_gpus} GPUs already running"


def _admitted(req: SandboxRequest, st: AccountStatus) -> str:
    if req.gpus == 0:
        return f"{req.name} uses no GPUs"
    runtime = _runtime_hours(req, st)
    beside = _running_phrase(st)
    return f"{_left(st)}; {req.shape}{beside} can run about {human_hours(runtime)} on it"


def _left(st: AccountStatus) -> str:
    unit = st.unit
    left = _amount(st.remaining, unit)
    total = _amount(st.allowance, unit)
    if st.account.kind == "Shared":
        return f"{_owner_phrase(st.account)} has {left} of {total} {unit} left in {st.period.name}"
    who = st.account.name if st.account.kind == "User" else _owner_phrase(st.account)
    return (
        f"{who} has {left} of {total} {unit} left in {st.period.name} on budget {st.account.budget}"
    )


def _who(req: SandboxRequest, account: Account) -> str:
    return req.person.user if account.kind == "User" else _owner_phrase(account)


def _owner_phrase(account: Account) -> str:
    if account.kind == "Namespace":
        return f"namespace {account.name}"
    return f"the shared pool of {account.budget}"


def _rate(req: SandboxRequest, st: AccountStatus) -> float:
    return req.hourly_cost if st.unit != GPU_HOURS else req.gpus * req.billing_weight


def _runtime_hours(req: SandboxRequest, st: AccountStatus) -> float:
    """How long the account lasts with `req` running beside what already burns it."""
    rate = _rate(req, st) + st.burn_per_hour
    return st.remaining / rate if rate > 0 else math.inf


def _amount(value: float, unit: str) -> str:
    if unit != GPU_HOURS:
        return f"{value:.2f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def human_hours(hours: float) -> str:
    """22 minutes, 3.5 hours, 4 days; 'indefinitely' for an infinite runtime."""
    if math.isinf(hours):
        return "indefinitely"
    minutes = math.floor(hours * 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    if hours < 48:
        return f"{hours:.1f}".rstrip("0").rstrip(".") + " hours"
    return f"{hours / 24:.1f}".rstrip("0").rstrip(".") + " days"
