"""Budget enforcement while sandboxes run: warnings once per threshold, then the exhaustion action.

Each check compares an account's status with what was already announced (`Announced`):

* every warn threshold reached since the last check gives one `Warn` (a top-up that brings usage
  back under a threshold re-arms it);
* reaching the allowance gives one `Exhausted` carrying the budget's action: `Suspend` (the
  loop suspends the account's running sandboxes with suspendedReason BudgetExhausted, storage
  kept), `DenyNew` (admission refuses; running ones continue) or `Notify` (only tell);
* a top-up that leaves allowance again, or a new period, gives one `Lifted`: the owner may resume
  (admission decides, with the same checks as a new sandbox).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sandboxer.budgets.gate import human_hours
from sandboxer.budgets.matching import Account, Budget, Person, accounts_for, pays_for
from sandboxer.budgets.status import GPU_HOURS, AccountStatus, RunningSandbox

ExhaustAction = Literal["Suspend", "DenyNew", "Notify"]


@dataclass(frozen=True, slots=True)
class Announced:
    """What has been announced for one account in one period (kept by the loop)."""

    period: str
    warned: frozenset[int] = frozenset()
    exhausted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"period": self.period, "warned": sorted(self.warned), "exhausted": self.exhausted}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Announced:
        return cls(doc["period"], frozenset(doc["warned"]), bool(doc["exhausted"]))


@dataclass(frozen=True, slots=True)
class Warn:
    status: AccountStatus
    threshold: int
    message: str


@dataclass(frozen=True, slots=True)
class Exhausted:
    status: AccountStatus
    action: ExhaustAction
    message: str


@dataclass(frozen=True, slots=True)
class Lifted:
    status: AccountStatus
    reason: Literal["TopUp", "NewPeriod"]
    message: str


Action = Warn | Exhausted | Lifted


def check(
    budget: Budget, status: AccountStatus, before: Announced | None
) -> tuple[list[Action], Announced]:
    """Actions to take now for one account, and what will then have been announced."""
    actions: list[Action] = []
    period = status.period.name
    if before is not None and before.period != period:
        if before.exhausted:
            actions.append(Lifted(status, "NewPeriod", _lifted(status, "a new period began")))
        before = None
    before = before or Announced(period)
    percent = status.used_fraction * 100
    reached = {t for t in budget.spec.warn_at if percent >= t}
    for threshold in sorted(reached - before.warned):
        if not status.exhausted:
            actions.append(Warn(status, threshold, _warning(status, threshold)))
    exhausted = status.exhausted
    if exhausted and not before.exhausted:
        action = budget.spec.on_exhausted
        actions.append(Exhausted(status, action, _exhausted(status, action)))
    elif before.exhausted and not exhausted:
        actions.append(Lifted(status, "TopUp", _lifted(status, "the allowance was raised")))
    return actions, Announced(period, frozenset(reached), exhausted)


def to_suspend(
    budgets: Iterable[Budget],
    exhausted: Iterable[Account],
    running: Iterable[RunningSandbox],
    groups_of: Mapping[str, frozenset[str]],
) -> list[tuple[RunningSandbox, Account]]:
    """Running sandboxes charged to an exhausted account of a budget whose action is Suspend."""
    by_name = {b.name: b for b in budgets}
    dead = {a for a in exhausted if a.budget in by_name}
    out: list[tuple[RunningSandbox, Account]] = []
    for sb in running:
        person = Person(sb.owner, groups_of.get(sb.owner, frozenset()), sb.namespace)
        for account in sorted(dead):
            budget = by_name[account.budget]
            if budget.spec.on_exhausted != "Suspend" or not pays_for(budget.spec, sb.sandbox_class):
                continue
            if account in accounts_for(budget, person):
                out.append((sb, account))
                break
    return out


def _who(account: Account) -> str:
    if account.kind == "User":
        return account.name
    if account.kind == "Namespace":
        return f"namespace {account.name}"
    return f"the shared pool of {account.budget}"


def _quantity(value: float, unit: str) -> str:
    text = f"{value:.2f}"
    return f"{text} {unit}" if unit != GPU_HOURS else f"{text.rstrip('0').rstrip('.')} {unit}"


def _warning(st: AccountStatus, threshold: int) -> str:
    where = f"in {st.period.name} on budget {st.account.budget}"
    text = (
        f"{_who(st.account)} has used {threshold}% or more of {_quantity(st.allowance, st.unit)} "
        f"{where} ({_quantity(st.used, st.unit)} used, {_quantity(st.remaining, st.unit)} left)"
    )
    if st.burn_per_hour > 0:
        text += (
            f"; at the current {st.running_weighted_gpus:g} GPUs that lasts "
            f"{human_hours(st.remaining / st.burn_per_hour)}"
        )
    return text


def _exhausted(st: AccountStatus, action: ExhaustAction) -> str:
    then = {
        "Suspend": "running sandboxes are suspended (their storage is kept)",
        "DenyNew": "new sandboxes are refused; running ones continue",
        "Notify": "nothing is stopped; the owners of the budget are told",
    }[action]
    return (
        f"{_who(st.account)} has used all {_quantity(st.allowance, st.unit)} in "
        f"{st.period.name} on budget {st.account.budget}; {then}. Sandboxes can resume after a "
        f"top-up or when the next period starts on {st.period.end:%Y-%m-%d} (UTC)"
    )


def _lifted(st: AccountStatus, why: str) -> str:
    return (
        f"{_who(st.account)} can resume sandboxes on budget {st.account.budget}: {why}; "
        f"{_quantity(st.remaining, st.unit)} left in {st.period.name}"
    )
