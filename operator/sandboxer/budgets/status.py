"""Per-account budget status: used, remaining, burn rate, projected exhaustion, friction.

Used = closed ledger rows of the period + provisional rows of the still-open hours, counting only
classes the budget pays for. The burn rate is what the account's running sandboxes draw right
now (weighted GPUs, or their hourly cost for money budgets); projected exhaustion is
`now + remaining / burn rate`, shown only when it falls inside the period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandboxer.api.budget import BudgetPeriod, ComputeBudgetStatus, SubjectUsage
from sandboxer.api.sandbox import SandboxBudget
from sandboxer.budgets.matching import Account, Budget, Person, accounts_for, pays_for
from sandboxer.budgets.periods import Period
from sandboxer.ledger.rows import UsageRow

GPU_HOURS = "GPU-hours"


@dataclass(frozen=True, slots=True)
class UsageSlice:
    """Usage of one owner in one namespace and class, summed over part of a period."""

    owner: str
    namespace: str
    sandbox_class: str
    gpu_hours: float  # billing-weighted
    cost: float
    currency: str


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    uid: str
    name: str
    namespace: str
    owner: str
    sandbox_class: str
    gpus: int
    billing_weight: float
    hourly_cost: float = 0.0  # contracted price of all its GPUs for one hour

    @property
    def weighted_gpus(self) -> float:
        return self.gpus * self.billing_weight


@dataclass(slots=True)
class Friction:
    refusals: int = 0
    exhaustions: int = 0
    gpu_wait_seconds: float = 0.0


@dataclass(slots=True)
class FrictionBook:
    """Friction counters per (period name, account); kept by the loop, shown in status."""

    counters: dict[tuple[str, Account], Friction] = field(default_factory=dict)

    def get(self, period: str, account: Account) -> Friction:
        return self.counters.setdefault((period, account), Friction())

    def refused(self, period: str, accounts: Iterable[Account]) -> None:
        for account in accounts:
            self.get(period, account).refusals += 1

    def exhausted(self, period: str, account: Account) -> None:
        self.get(period, account).exhaustions += 1

    def waited(self, period: str, accounts: Iterable[Account], seconds: float) -> None:
        for account in accounts:
            self.get(period, account).gpu_wait_seconds += max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class AccountStatus:
    account: Account
    period: Period
    unit: str  # GPU_HOURS or a currency code
    allowance: float
    used: float  # in `unit`
    used_gpu_hours: float
    running_gpus: int
    running_weighted_gpus: float
    burn_per_hour: float  # in `unit`
    projected_exhaustion: datetime | None
    friction: Friction

    @property
    def remaining(self) -> float:
        return max(0.0, self.allowance - self.used)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.allowance

    @property
    def used_fraction(self) -> float:
        return self.used / self.allowance if self.allowance > 0 else 1.0


SliceSums = dict[tuple[str, str, str, str], list[float]]  # (owner, ns, class, currency) -> h, cost


def add_rows(sums: SliceSums, rows: Iterable[UsageRow], period: Period | None = None) -> SliceSums:
    """Add rows (of `period` only, when given) into per-owner/namespace/class sums."""
    for row in rows:
        if period is not None and row.hour not in period:
            continue
        acc = sums.setdefault((row.owner, row.namespace, row.sandbox_class, row.currency), [0, 0])
        acc[0] += row.allocated_gpu_hours
        acc[1] += row.cost
    return sums


def to_slices(sums: SliceSums) -> list[UsageSlice]:
    return [UsageSlice(o, n, c, h, cost, cur) for (o, n, c, cur), (h, cost) in sorted(sums.items())]


def account_statuses(
    budget: Budget,
    period: Period,
    usage: Iterable[UsageSlice],
    running: Iterable[RunningSandbox],
    groups_of: Mapping[str, frozenset[str]],
    now: datetime,
    friction: FrictionBook | None = None,
    include: Iterable[Account] = (),
) -> dict[Account, AccountStatus]:
    """Status of every account of `budget` that has usage, runs something, is named, has
    friction this period, or is listed in `include` (e.g. the accounts admission must check)."""
    spec = budget.spec
    money = spec.allowance.amount is not None
    unit = (spec.allowance.currency or "") if money else GPU_HOURS
    allowance = (spec.allowance.amount if money else spec.allowance.gpu_hours) or 0.0

    def person(owner: str, namespace: str) -> Person:
        return Person(owner, groups_of.get(owner, frozenset()), namespace)

    used: dict[Account, float] = {a: 0.0 for a in _named_accounts(budget)}
    used.update({a: 0.0 for a in include if a.budget == budget.name})
    hours: dict[Account, float] = {}
    for s in usage:
        if not pays_for(spec, s.sandbox_class) or (money and s.currency != unit):
            continue
        for account in accounts_for(budget, person(s.owner, s.namespace)):
            used[account] = used.get(account, 0.0) + (s.cost if money else s.gpu_hours)
            hours[account] = hours.get(account, 0.0) + s.gpu_hours
    gpus: dict[Account, tuple[int, float, float]] = {}
    for sb in running:
        if not pays_for(spec, sb.sandbox_class):
            continue
        for account in accounts_for(budget, person(sb.owner, sb.namespace)):
            n, w, c = gpus.get(account, (0, 0.0, 0.0))
            gpus[account] = (n + sb.gpus, w + sb.weighted_gpus, c + sb.hourly_cost)
            used.setdefault(account, 0.0)
    book = friction or FrictionBook()
    for name, account in book.counters:
        if name == period.name and account.budget == budget.name:
            used.setdefault(account, 0.0)

    out: dict[Account, AccountStatus] = {}
    for account in sorted(used):
        n, weighted, cost_rate = gpus.get(account, (0, 0.0, 0.0))
        burn = cost_rate if money else weighted
        remaining = allowance - used[account]
        projected = None
        if burn > 0 and remaining > 0:
            at = now + timedelta(hours=remaining / burn)
            projected = at if at < period.end else None
        out[account] = AccountStatus(
            account, period, unit, allowance, used[account], hours.get(account, 0.0), n,
            weighted, burn, projected, book.get(period.name, account),
        )  # fmt: skip
    return out


def budget_status(
    budget: Budget,
    statuses: Mapping[Account, AccountStatus],
    period: Period,
    announced: Mapping[Account, tuple[frozenset[int], bool]] | None = None,
) -> ComputeBudgetStatus:
    """The `status` of a ComputeBudget object (conditions are left to the caller).

    `announced`: per account, the warned thresholds and whether exhaustion was announced.
    """
    subjects = []
    for account, st in sorted(statuses.items()):
        warned, gone = (announced or {}).get(account, (frozenset(), False))
        money = st.unit != GPU_HOURS
        subjects.append(
            SubjectUsage(
                kind=account.kind,
                name=account.name,
                used_gpu_hours=round(st.used_gpu_hours, 6),
                remaining_gpu_hours=None if money else round(st.remaining, 6),
                used_amount=round(st.used, 6) if money else None,
                running_gpus=st.running_gpus,
                projected_exhaustion=st.projected_exhaustion,
                refusals=st.friction.refusals,
                exhaustions=st.friction.exhaustions,
                gpu_wait_seconds=st.friction.gpu_wait_seconds,
                warned=sorted(warned),
                announced_exhausted=gone,
            )
        )
    return ComputeBudgetStatus(
        period=BudgetPeriod(name=period.name, start=period.start, end=period.end),
        subjects=subjects,
    )


def sandbox_budget(status: AccountStatus) -> SandboxBudget:
    """What a sandbox's `status.budget` shows: the tightest budget (`admission.Decision`)."""
    remaining = None if status.unit != GPU_HOURS else round(status.remaining, 3)
    return SandboxBudget(
        name=status.account.budget, remaining_gpu_hours=remaining, period=status.period.name
    )


def _named_accounts(budget: Budget) -> list[Account]:
    """Accounts that show in status even before any usage (users and namespaces named)."""
    if budget.spec.scope == "Shared":
        return [Account(budget.name, "Shared", "")]
    return [
        Account(budget.name, s.kind, s.name)
        for s in budget.spec.subjects
        if s.kind in ("User", "Namespace")
    ]
