"""What a sandbox create or update may be, as pure functions: owner, immutable fields, class
limits, and the protocol of the budget gate (the kopf glue is controller/admission.py).

Every refusal names the field, the limit and what to change (DESIGN.md invariant 1).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import parse_duration, parse_quantity
from sandboxer.manifests import inputs
from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import ADMISSION_ANNOTATION, OWNER_GROUPS_ANNOTATION
from sandboxer.manifests.statefulset import RESERVED_ENV

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


@dataclass(frozen=True)
class Requester:
    """Who sent the request (AdmissionReview userInfo) and whether that is the operator itself."""

    username: str
    groups: tuple[str, ...] = ()
    is_operator: bool = False
    is_admin: bool = False  # in an admin group: may change or delete anyone's sandbox


def is_operator(username: str, groups: Collection[str], operator_users: Collection[str]) -> bool:
    return username in operator_users or any(g in operator_users for g in groups)


def owner_to_stamp(
    operation: Operation, new_owner: str | None, old_owner: str | None, who: Requester
) -> str | None:
    """The owner the mutating webhook writes into spec.owner (None: leave it as sent).

    CREATE: the authenticated user, unless the operator creates on someone's behalf.
    UPDATE: the stored owner, so a manifest without spec.owner re-applied later keeps it.
    A user who sends another owner on UPDATE keeps it in the request, for the validator to
    refuse with a clear message instead of a silent overwrite.
    """
    if operation == "CREATE":
        if who.is_operator and new_owner:
            return None
        return who.username
    if operation == "UPDATE" and new_owner is None and old_owner is not None:
        return old_owner
    return None


def unattributed(owner: str | None, annotations: Mapping[str, str]) -> tuple[str, str] | None:
    """(reason, message) when nobody can be billed for a sandbox, so it must not run.

    Without the webhooks (down, deleted, failurePolicy Ignore, created before the operator was
    installed) a sandbox is stored as sent: no spec.owner, no owner-groups for Group budgets.
    """
    what_to_do = (
        "Delete it and create it again once admission runs (`kubectl get "
        "mutatingwebhookconfigurations` lists sandboxer.io), or an admin sets spec.owner and "
        f"the {OWNER_GROUPS_ANNOTATION} annotation (the owner's groups, comma-separated, may be "
        "empty)."
    )
    if not owner:
        return "OwnerUnknown", f"No spec.owner: admission did not run for it. {what_to_do}"
    if ADMISSION_ANNOTATION not in annotations and OWNER_GROUPS_ANNOTATION not in annotations:
        return (
            "OwnerUnknown",
            f"The groups of {owner!r} are unknown (admission did not run), so Group budgets "
            f"cannot be charged. {what_to_do}",
        )
    return None


def owner_groups(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """The owner's groups as the mutating webhook stamped them."""
    raw = annotations.get(OWNER_GROUPS_ANNOTATION, "")
    return tuple(g for g in (part.strip() for part in raw.split(",")) if g)


def _too_big(value: str, limit: str | None) -> bool:
    return limit is not None and parse_quantity(value) > parse_quantity(limit)


def check_changer(
    operation: Operation,
    stored_owner: str | None,
    who: Requester,
    old_annotations: Mapping[str, str],
    new_annotations: Mapping[str, str],
) -> list[str]:
    """UPDATE and DELETE: the owner's alone (and admins' and the operator's).

    In a shared team namespace RBAC lets every member edit every sandbox; the owner's budget
    pays for what runs, so only the owner decides. The annotations admission stamps (who the
    owner's groups are, whether admission ran) decide which budgets pay: nobody edits them.
    """
    if who.is_operator or who.is_admin:
        return []
    errors = []
    if stored_owner and who.username != stored_owner:
        verb = "delete" if operation == "DELETE" else "change"
        errors.append(
            f"{NAME_FIELD}: this sandbox belongs to {stored_owner!r}; only its owner or an admin "
            f"can {verb} it (you are {who.username})"
        )
    if operation == "UPDATE":
        for key in (OWNER_GROUPS_ANNOTATION, ADMISSION_ANNOTATION):
            if old_annotations.get(key) != new_annotations.get(key):
                errors.append(
                    f"metadata.annotations[{key}]: set by admission and cannot be changed; "
                    "leave it out of your manifest or keep its value"
                )
    return errors


NAME_FIELD = "metadata.name"


def check_owner(
    new: ExperimentSandboxSpec, old: ExperimentSandboxSpec | None, who: Requester
) -> list[str]:
    if who.is_operator or (old is not None and who.is_admin):
        return []  # an admin may hand an existing sandbox to someone else
    if old is None:
        if new.owner not in (None, who.username):
            return [
                f"spec.owner: you ({who.username}) cannot create a sandbox owned by "
                f"{new.owner!r}; remove spec.owner, it is set from your identity"
            ]
        return []
    if new.owner != old.owner:
        return [
            f"spec.owner: is {old.owner!r} and cannot be changed (you are {who.username}); "
            "remove spec.owner from your manifest or keep its current value"
        ]
    return []


def check_immutable(
    new: ExperimentSandboxSpec, old: ExperimentSandboxSpec, cls: SandboxClassSpec | None
) -> list[str]:
    errors = []
    if new.class_ != old.class_:
        errors.append(
            f"spec.class: cannot change from {old.class_!r} to {new.class_!r}; create a new "
            "sandbox of that class instead"
        )
    if cls is not None:
        before = inputs.storage(Sandbox("x", "x", old), cls)
        after = inputs.storage(Sandbox("x", "x", new), cls)
        if parse_quantity(after) < parse_quantity(before):
            errors.append(
                f"spec.storage.size: cannot shrink the workspace from {before} to {after}; "
                f"volumes only grow, so keep at least {before}"
            )
    return errors


def _given(spec: ExperimentSandboxSpec | None) -> dict[str, str | None]:
    res = spec.resources if spec else None
    st = spec.storage if spec else None
    return {
        "spec.resources.cpu": res.cpu if res else None,
        "spec.resources.memory": res.memory if res else None,
        "spec.storage.size": st.size if st else None,
    }


def check_quantities(
    new: ExperimentSandboxSpec, old: ExperimentSandboxSpec | None, cls: SandboxClassSpec | None
) -> list[str]:
    """Every quantity the user gives (cpu, memory, storage size) must be more than zero; on
    UPDATE only the ones that change, so a stored sandbox stays suspendable."""
    defaults = {
        "spec.resources.cpu": f"{cls.defaults.cpu_per_gpu} per GPU" if cls else None,
        "spec.resources.memory": f"{cls.defaults.memory_per_gpu} per GPU" if cls else None,
        "spec.storage.size": cls.defaults.storage if cls else None,
    }
    before = _given(old)
    errors = []
    for field, value in _given(new).items():
        if value is None or value == before[field] or parse_quantity(value) > 0:
            continue
        hint = f" ({defaults[field]})" if defaults[field] else ""
        errors.append(
            f"{field}: {value} is not a positive quantity; ask for more than zero, or leave "
            f"{field} out for the class default{hint}"
        )
    return errors


def check_class_limits(
    spec: ExperimentSandboxSpec, class_name: str, cls: SandboxClassSpec
) -> list[str]:
    """Everything a class bounds: GPUs, image, cpu/memory/storage, idle override, lifetime."""
    errors = []
    sb = Sandbox("x", "x", spec)
    where = f"class {class_name!r}"
    if spec.gpus > cls.max_gpus:
        errors.append(
            f"spec.gpus: {spec.gpus} is more than {where} allows (maxGpus {cls.max_gpus}); "
            f"ask for at most {cls.max_gpus} or use a class with more GPUs"
        )
    image = inputs.image(sb, cls)
    allowed = [cls.image, *cls.allowed_images]
    if not any(image == pattern or fnmatch.fnmatchcase(image, pattern) for pattern in allowed):
        errors.append(
            f"spec.image: {image!r} is not allowed by {where}; use one matching "
            f"{', '.join(repr(p) for p in allowed)} or leave spec.image out for the default"
        )
    for field, value, limit in (
        ("spec.resources.cpu", inputs.cpu(sb, cls), cls.limits.max_cpu),
        ("spec.resources.memory", inputs.memory(sb, cls), cls.limits.max_memory),
        ("spec.storage.size", inputs.storage(sb, cls), cls.limits.max_storage),
    ):
        # Defaults scale with GPUs: after a GPU refusal, only the GPU message is useful.
        # (A quantity at or below zero is check_quantities' refusal.)
        if (
            parse_quantity(value) > 0
            and _too_big(value, limit)
            and not (errors and field != "spec.storage.size")
        ):
            errors.append(
                f"{field}: {value} is more than {where} allows (at most {limit}); ask for "
                f"{limit} or less"
            )
    idle = spec.idle
    if idle is not None and idle.after is not None:
        bound = cls.idle.max_after or cls.idle.after
        if parse_duration(idle.after) > parse_duration(bound):
            errors.append(
                f"spec.idle.after: {idle.after} is longer than {where} allows (at most {bound}); "
                f"set {bound} or less"
            )
    if idle is not None and idle.disabled and not cls.idle.allow_opt_out:
        errors.append(
            f"spec.idle.disabled: {where} does not allow opting out of idle reclaim; remove "
            "spec.idle.disabled"
        )
    lifetime, most = spec.lifetime, cls.max_lifetime
    if (
        lifetime is not None
        and most is not None
        and parse_duration(lifetime) > parse_duration(most)
    ):
        errors.append(
            f"spec.lifetime: {lifetime} is longer than {where} allows (at most {most}); "
            f"set {most} or less"
        )
    reserved = sorted({e.name for e in spec.env} & RESERVED_ENV)
    if reserved:
        errors.append(
            f"spec.env: {', '.join(reserved)} is set by Sandboxer and cannot be overridden; "
            "remove it from spec.env"
        )
    return errors


def validate_sandbox(
    new: ExperimentSandboxSpec,
    old: ExperimentSandboxSpec | None,
    class_name: str,
    cls: SandboxClassSpec | None,
    who: Requester,
) -> list[str]:
    """All reasons to refuse this CREATE/UPDATE (empty: admit)."""
    errors = check_owner(new, old, who)
    errors += check_quantities(new, old, cls)
    if old is not None:
        errors += check_immutable(new, old, cls)
    if cls is None:
        # Only on CREATE: an existing sandbox of a since-deleted class may still be edited
        # (to suspend it, say); the controller reports ClassNotFound for it.
        if old is None:
            errors.append(
                f"spec.class: SandboxClass {class_name!r} does not exist; see "
                "`kubectl get sandboxclasses` for the classes you can use"
            )
        return errors
    # Limits apply to what changes: an unchanged sandbox stays editable after a class tightens.
    if old is None or new.model_dump() != old.model_dump():
        errors += check_class_limits(new, class_name, cls)
    return errors


@dataclass(frozen=True)
class BudgetRequest:
    """What the budget gate is asked about: who wants how many GPUs of which class."""

    operation: Operation
    owner: str
    namespace: str
    name: str
    class_name: str
    gpus: int
    billing_weight: float
    dry_run: bool
    groups: tuple[str, ...] = ()  # the requester's groups (Group budgets match on them)


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    message: str = ""  # on refusal: which budget, what is left, what to change
    reason: str = ""  # one CamelCase word, e.g. Exhausted, NoBudget (for metrics)


class BudgetGate(Protocol):
    """The budget check at admission (the operator sets one in OperatorConfig.budget_gate)."""

    @property
    def ready(self) -> bool:
        """Whether a refusal could be decided now (the budget figures are in)."""
        ...

    async def check(self, request: BudgetRequest) -> BudgetDecision: ...


class AllowAllBudgets:
    """The gate without a ledger (no accounting loop runs): every request is inside budget."""

    ready = True

    async def check(self, request: BudgetRequest) -> BudgetDecision:
        return BudgetDecision(allowed=True)
