"""Which ComputeBudgets apply to a sandbox owner, and whose usage each allowance is measured on.

A budget applies when any of its subjects matches: `User` by the owner's user name, `Group` by
one of the owner's groups, `Namespace` by the sandbox's namespace. The allowance is measured on
an *account*:

* scope `Shared`: one pool for everything its subjects use (account kind `Shared`);
* scope `PerSubject`: a `User` subject -> that user; a `Group` subject -> each member on their
  own (account kind `User`), so a group budget of 200 h gives every member 200 h; a `Namespace`
  subject -> the namespace's total (account kind `Namespace`).

When several budgets (or several accounts of one budget) apply, **all must allow**: a sandbox
starts only if every applicable account has allowance left, concurrency room and admits the
class. The strictest limit therefore wins, and a user cannot escape a team limit by also being
named in a personal budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sandboxer.api.budget import ComputeBudgetSpec

AccountKind = Literal["User", "Namespace", "Shared"]


@dataclass(frozen=True, slots=True)
class Person:
    """A sandbox owner in the place the sandbox lives."""

    user: str
    groups: frozenset[str]
    namespace: str


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    spec: ComputeBudgetSpec


@dataclass(frozen=True, slots=True, order=True)
class Account:
    budget: str
    kind: AccountKind
    name: str  # user name, namespace, or "" for a Shared pool

    def describe(self) -> str:
        if self.kind == "Shared":
            return f"budget {self.budget}"
        return f"{self.kind.lower()} {self.name} on budget {self.budget}"


def accounts_for(budget: Budget, person: Person) -> list[Account]:
    """The accounts of `budget` that usage by `person` is charged to (empty: not applicable)."""
    spec = budget.spec
    hits: set[Account] = set()
    for subject in spec.subjects:
        by_user = subject.kind == "User" and subject.name == person.user
        by_group = subject.kind == "Group" and subject.name in person.groups
        if by_user or by_group:
            hits.add(Account(budget.name, "User", person.user))
        elif subject.kind == "Namespace" and subject.name == person.namespace:
            hits.add(Account(budget.name, "Namespace", person.namespace))
    if hits and spec.scope == "Shared":
        return [Account(budget.name, "Shared", "")]
    return sorted(hits)


def applicable(budgets: Iterable[Budget], person: Person) -> list[tuple[Budget, Account]]:
    """Every (budget, account) that must allow a sandbox of `person`, sorted by budget name."""
    out = [(b, a) for b in budgets for a in accounts_for(b, person)]
    return sorted(out, key=lambda pair: pair[1])


def pays_for(spec: ComputeBudgetSpec, sandbox_class: str) -> bool:
    """An empty allowedClasses list means every class."""
    return not spec.allowed_classes or sandbox_class in spec.allowed_classes


class BudgetIndex:
    """Which budgets name a person, without testing every budget against every sandbox.

    The loop asks this for thousands of sandboxes per pass; looking subjects up in sets keeps
    that proportional to sandboxes, not sandboxes x budgets.
    """

    def __init__(self, budgets: Iterable[Budget]) -> None:
        self.budgets = list(budgets)
        self._by: dict[tuple[str, str], list[Budget]] = {}
        for budget in self.budgets:
            for subject in budget.spec.subjects:
                found = self._by.setdefault((subject.kind, subject.name), [])
                if budget not in found:
                    found.append(budget)
        self._cache: dict[Person, list[Budget]] = {}

    def budgets_for(self, person: Person) -> list[Budget]:
        """Budgets with an account for `person`, sorted by name."""
        cached = self._cache.get(person)
        if cached is None:
            keys = [("User", person.user), ("Namespace", person.namespace)]
            keys += [("Group", g) for g in person.groups]
            names: dict[str, Budget] = {}
            for key in keys:
                for budget in self._by.get(key, ()):
                    names[budget.name] = budget
            cached = self._cache[person] = [names[n] for n in sorted(names)]
        return cached
