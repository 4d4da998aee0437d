"""Sandboxes that reached the API without admission: never run a GPU for nobody.

The webhooks stamp the owner, the owner's groups and `sandboxer.io/admission`, and ask the budget
gate. A sandbox stored without them (webhooks down or deleted, failurePolicy Ignore, created before
the operator) is either held with no children (nobody to bill), or checked here against the
budgets before its first start and suspended when they refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from sandboxer import API_VERSION
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.controller.kube import KubeClient
from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import ADMISSION_ANNOTATION
from sandboxer.sandbox_rules import BudgetGate, BudgetRequest, owner_groups

CHECKED_BY_OPERATOR = "operator"


def needs_budget_check(sandbox: Sandbox, annotations: Mapping[str, str], provisioned: bool) -> bool:
    """No webhook saw it, it never ran, and it is about to start GPUs."""
    return ADMISSION_ANNOTATION not in annotations and not provisioned and not sandbox.spec.suspend


async def check_unadmitted(
    sandbox: Sandbox,
    annotations: Mapping[str, str],
    cls: SandboxClassSpec,
    gate: BudgetGate,
    kube: KubeClient,
) -> tuple[bool, str]:
    """Ask the budget gate as admission would have; record the outcome on the sandbox.

    Allowed: stamp the annotation (checked once). Refused: suspend it (the caller provisions it
    suspended, with suspendedReason BudgetRefused), so the owner resumes it through admission once
    the budget allows. (False, "") means the gate has no figures yet and the caller retries.
    """
    if not gate.ready:
        return False, ""
    decision = await gate.check(
        BudgetRequest(
            operation="CREATE",
            owner=sandbox.spec.owner or "",
            namespace=sandbox.namespace,
            name=sandbox.name,
            class_name=sandbox.spec.class_,
            gpus=sandbox.spec.gpus,
            billing_weight=cls.gpu.billing_weight,
            dry_run=False,
            groups=owner_groups(annotations),
        )
    )
    patch: dict[str, Any] = {
        "metadata": {"annotations": {ADMISSION_ANNOTATION: CHECKED_BY_OPERATOR}}
    }
    if not decision.allowed:
        # The reason first, as the loop does: the spec change then arrives with it in status.
        await kube.patch(
            API_VERSION, "ExperimentSandbox", sandbox.namespace, sandbox.name,
            {"status": {"suspendedReason": "BudgetRefused"}}, subresource="status",
        )  # fmt: skip
        patch["spec"] = {"suspend": True}
    await kube.patch(API_VERSION, "ExperimentSandbox", sandbox.namespace, sandbox.name, patch)
    return decision.allowed, decision.message or "Over budget."


def warn_refused(body: kopf.Body, message: str) -> None:
    kopf.warn(
        body,
        reason="BudgetRefused",
        message=f"Created without admission; the budget check refuses it, so it is suspended: "
        f"{message}",
    )
