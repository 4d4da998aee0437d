"""Admission webhooks of ExperimentSandbox: stamp the owner, refuse what cannot be allowed.

The decisions are pure (sandboxer/sandbox_rules.py); this module turns AdmissionReview data into
their inputs and their answers into kopf patches and AdmissionErrors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from sandboxer import API_VERSION
from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.sandboxes import SANDBOXES, untyped
from sandboxer.manifests.labels import ADMISSION_ANNOTATION, OWNER_GROUPS_ANNOTATION
from sandboxer.sandbox_rules import (
    BudgetRequest,
    Operation,
    Requester,
    check_changer,
    is_operator,
    owner_to_stamp,
    validate_sandbox,
)

OPERATIONS: list[Operation] = ["CREATE", "UPDATE"]
VALIDATED: list[Operation] = ["CREATE", "UPDATE", "DELETE"]  # others may not delete yours
# kopf serves each admission handler at /<handler id>; the chart's webhook configurations call
# these paths (values webhook.mutatePath and webhook.validatePath).
MUTATE_ID = "sandbox-mutate"
VALIDATE_ID = "sandbox-validate"


def requester(userinfo: Mapping[str, Any], config: OperatorConfig) -> Requester:
    username = str(userinfo.get("username", ""))
    groups = tuple(userinfo.get("groups") or ())
    admin = any(g in config.admin_groups for g in groups)
    return Requester(
        username, groups, is_operator(username, groups, config.operator_users), is_admin=admin
    )


def _annotations(body: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((body or {}).get("metadata") or {}).get("annotations") or {}


def _spec(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (body or {}).get("spec") or {}


def stamp_owner(
    *,
    operation: str,
    body: kopf.Body,
    old: Any,
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """spec.owner := the authenticated user on CREATE; the stored owner kept on UPDATE."""
    who = requester(userinfo, memo.config)
    owner = owner_to_stamp(
        operation,  # type: ignore[arg-type]
        _spec(body).get("owner"),
        _spec(old).get("owner"),
        who,
    )
    if owner is not None and owner != _spec(body).get("owner"):
        patch.spec["owner"] = owner
    if operation == "UPDATE":
        # A manifest applied again without them keeps what admission stamped (as the owner).
        sent, stored = _annotations(body), _annotations(old)
        for key in (ADMISSION_ANNOTATION, OWNER_GROUPS_ANNOTATION):
            if key in stored and key not in sent:
                patch.metadata.setdefault("annotations", {})[key] = stored[key]
    if operation != "CREATE":
        return
    annotations = patch.metadata.setdefault("annotations", {})
    # The operator provisions only what admission saw (controller/attribution.py); a value the
    # user sent is overwritten. The validating webhook runs after this one, or nothing is stored.
    annotations[ADMISSION_ANNOTATION] = "webhook"
    if not who.is_operator:
        # Group budgets need the owner's groups later too, when no request is in hand.
        annotations[OWNER_GROUPS_ANNOTATION] = ",".join(sorted(who.groups))


async def check_sandbox(
    *,
    operation: str,
    body: kopf.Body,
    old: Any,
    userinfo: Mapping[str, Any],
    dryrun: bool,
    memo: kopf.Memo,
    index_class: kopf.Index[str, Any],
    **_: Any,
) -> None:
    """Refuse others' changes, owner changes, immutable fields, class limits and over-budget."""
    config: OperatorConfig = memo.config
    who = requester(userinfo, config)
    if operation in ("UPDATE", "DELETE"):
        before = old if old is not None else body
        refused = check_changer(
            operation,  # type: ignore[arg-type]
            _spec(before).get("owner"),
            who,
            _annotations(before),
            _annotations(body),
        )
        if refused:
            raise kopf.AdmissionError("; ".join(refused), code=403)
        if operation == "DELETE":
            return
    try:
        new_spec = ExperimentSandboxSpec.model_validate(_spec(body))
        old_spec = ExperimentSandboxSpec.model_validate(_spec(old)) if old else None
    except ValidationError as exc:
        raise kopf.AdmissionError(f"Invalid ExperimentSandbox spec: {exc}", code=422) from exc
    stored = list(index_class.get(new_spec.class_, []))
    if not stored:
        # kopf serves webhooks before its indexes are filled: ask the API before refusing.
        found = await memo.kube.get(API_VERSION, "SandboxClass", None, new_spec.class_)
        stored = [found["spec"]] if found else []
    cls = SandboxClassSpec.model_validate(stored[0]) if stored else None
    errors = validate_sandbox(new_spec, old_spec, new_spec.class_, cls, who)
    if errors:
        raise kopf.AdmissionError("; ".join(errors), code=422)
    # The budget is asked whenever GPUs would start running or grow.
    starts = not new_spec.suspend and (
        old_spec is None or old_spec.suspend or new_spec.gpus > old_spec.gpus
    )
    if cls is not None and starts and not who.is_operator:
        decision = await config.budget_gate.check(
            BudgetRequest(
                operation=operation,  # type: ignore[arg-type]
                owner=new_spec.owner or who.username,
                namespace=body.metadata.namespace or "",
                name=body.metadata.name or "",
                class_name=new_spec.class_,
                gpus=new_spec.gpus,
                billing_weight=cls.gpu.billing_weight,
                dry_run=dryrun,  # the gate must not reserve anything for a dry run
                groups=tuple(who.groups),
            )
        )
        if not decision.allowed:
            raise kopf.AdmissionError(decision.message or "Over budget.", code=403)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.mutate(*SANDBOXES, id=MUTATE_ID, operations=OPERATIONS, registry=registry)(
        untyped(stamp_owner)
    )
    kopf.on.validate(*SANDBOXES, id=VALIDATE_ID, operations=VALIDATED, registry=registry)(
        untyped(check_sandbox)
    )
