"""kopf handlers of ExperimentSandbox: provision children, follow spec changes, report status.

Thin on purpose: parsing, building and status derivation are pure (manifests/); API calls go
through controller/kube.py. Status comes from the observed StatefulSet and pod (indexed by our
labels), never from what we asked for, and is written only when it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, NoReturn

import kopf
from pydantic import ValidationError

from sandboxer import API_VERSION, GROUP, VERSION
from sandboxer.api.sandbox import ExperimentSandboxStatus
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.controller import observed
from sandboxer.controller.attribution import check_unadmitted, needs_budget_check, warn_refused
from sandboxer.controller.children import Child, desired_children
from sandboxer.controller.config import token_key
from sandboxer.controller.kube import KubeClient
from sandboxer.manifests.exposure import exposure_url
from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import (
    ADMISSION_ANNOTATION,
    OWNER_GROUPS_ANNOTATION,
    SANDBOX_LABEL,
)
from sandboxer.manifests.service import service_url
from sandboxer.manifests.status import condition_patch, derive_status, status_patch
from sandboxer.observability.logging import get_logger
from sandboxer.sandbox_rules import unattributed

SANDBOXES = (GROUP, VERSION, "experimentsandboxes")
OURS = {SANDBOX_LABEL: kopf.PRESENT}
KEPT_ANNOTATIONS = (OWNER_GROUPS_ANNOTATION, ADMISSION_ANNOTATION)
log = get_logger("sandboxer.controller")


def index_class(*, name: str, spec: Mapping[str, Any], **_: Any) -> dict[str, Any]:
    return {name: dict(spec)}


def index_sandbox(*, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> Any:
    # What status derivation needs; not kopf's annotations (a second copy of the spec).
    meta = body.metadata
    annotations = meta.get("annotations") or {}
    keep = {
        "metadata": {"name": name, "namespace": namespace, "uid": meta.uid,
                     "generation": meta.get("generation"),
                     "resourceVersion": meta.get("resourceVersion"),  # the loop's parse cache
                     "deletionTimestamp": meta.get("deletionTimestamp"),
                     "creationTimestamp": meta.get("creationTimestamp"),  # time to notebook
                     # Group budgets match on the owner's groups; attribution reads both.
                     "annotations": {k: annotations[k] for k in KEPT_ANNOTATIONS
                                     if k in annotations}},
        "spec": dict(body.spec),
        "status": dict(body.status),
    }  # fmt: skip
    return {(namespace, name): keep}


def index_child(
    *, body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
) -> Any:
    # Small copies: only what status derivation reads.
    keep = {
        "metadata": {
            "name": body.metadata.name,
            "deletionTimestamp": body.metadata.get("deletionTimestamp"),
        },
        "spec": {"nodeName": body.spec.get("nodeName"), "replicas": body.spec.get("replicas")},
        "status": dict(body.status),
    }
    return {(namespace, labels[SANDBOX_LABEL]): keep}


def _first(index: kopf.Index[Any, Any], key: Any) -> Any:
    """The live object under key (a terminating pod only when there is no other)."""
    items = list(index.get(key, []))
    items.sort(key=lambda o: o["metadata"].get("deletionTimestamp") is not None)
    return items[0] if items else None


def _url(sandbox: Sandbox, cls: SandboxClassSpec | None) -> str:
    return (exposure_url(sandbox, cls) if cls else None) or service_url(sandbox)


def _status(
    sandbox: Sandbox,
    raw_status: Mapping[str, Any],
    cls: SandboxClassSpec | None,
    statefulsets: kopf.Index[Any, Any],
    pods: kopf.Index[Any, Any],
) -> tuple[dict[str, Any], ExperimentSandboxStatus]:
    key = (sandbox.namespace, sandbox.name)
    current = ExperimentSandboxStatus.model_validate(raw_status or {})
    new = derive_status(
        sandbox, current, _first(statefulsets, key), _first(pods, key), url=_url(sandbox, cls)
    )
    return status_patch(current, new), new


async def reconcile(
    *,
    body: kopf.Body,
    reason: str,
    old: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    index_class: kopf.Index[str, Any],
    index_child_sts: kopf.Index[Any, Any],
    index_child_pod: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    """Create (or, after a restart, converge) every child, then report what is observed."""
    try:
        sandbox = Sandbox.from_body(body)
    except ValidationError as exc:
        _refuse(body, patch, "InvalidSpec", f"The spec cannot work: {exc}", permanent=True)
    delay = memo.config.class_retry_delay
    annotations = dict(body.metadata.annotations or {})
    if (problem := unattributed(sandbox.spec.owner, annotations)) is not None:
        _refuse(body, patch, *problem, delay=delay)  # no children: nobody could be billed
    try:
        cls = _class(index_class, sandbox.spec.class_)
    except ValidationError as exc:
        _refuse(
            body, patch, "InvalidClass", f"SandboxClass {sandbox.spec.class_!r}: {exc}", delay=delay
        )
    if cls is None:
        _refuse(
            body,
            patch,
            "ClassNotFound",
            f"SandboxClass {sandbox.spec.class_!r} does not exist; ask the platform team or "
            "use one listed by `kubectl get sandboxclasses`.",
            delay=delay,
        )
    raw_status = dict(body.status or {})
    provisioned = _first(index_child_sts, (sandbox.namespace, sandbox.name)) is not None
    if needs_budget_check(sandbox, annotations, provisioned):
        allowed, message = await check_unadmitted(
            sandbox, annotations, cls, memo.config.budget_gate, memo.kube
        )
        if not message:
            _refuse(body, patch, "AwaitingBudgets", "Created without admission: it starts "
                    "once the budgets' figures are in to check it.", delay=delay)  # fmt: skip
        if not allowed:
            warn_refused(body, message)
            sandbox = replace(sandbox, spec=sandbox.spec.model_copy(update={"suspend": True}))
            raw_status["suspendedReason"] = "BudgetRefused"
    config = memo.config
    children = desired_children(
        sandbox, cls, config.ingress_namespaces, token_key(config), config.own_namespace
    )
    kopf.adopt([c.obj for c in children], owner=body)
    updating = reason == "update"
    # On update only the children that follow the spec can change, and they exist: PATCH them.
    followers = [c for c in children if c.follows_spec or not updating]
    created = await _ensure(memo.kube, sandbox, followers, exists=updating)
    if created:
        kopf.event(
            body, type="Normal", reason="Provisioned", message=f"Created {', '.join(created)}."
        )
    if updating and (old or {}).get("spec", {}).get("suspend") != sandbox.spec.suspend:
        _announce_suspend(body, sandbox.spec.suspend)
    changes, new = _status(sandbox, raw_status, cls, index_child_sts, index_child_pod)
    if raw_status.get("suspendedReason") != body.status.get("suspendedReason"):
        changes["suspendedReason"] = raw_status["suspendedReason"]
    observed.ready_transition(memo, body.metadata, body.status, new.dump())
    patch.status.update(changes)


def _class(index_class: kopf.Index[str, Any], name: str) -> SandboxClassSpec | None:
    stored = list(index_class.get(name, []))
    return SandboxClassSpec.model_validate(stored[0]) if stored else None


async def _ensure(
    kube: KubeClient, sandbox: Sandbox, children: list[Child], *, exists: bool
) -> list[str]:
    """Create-or-patch each child in order; the kinds that were newly created."""
    created = []
    for child in children:
        outcome = await kube.ensure(child.obj, child.patch, exists=exists)
        if outcome == "created":
            created.append(child.obj["kind"])
        if outcome != "unchanged":
            log.info(
                f"{outcome.capitalize()} {child.obj['kind']}",
                sandbox=sandbox.name,
                namespace=sandbox.namespace,
                child=child.obj["metadata"]["name"],
            )
    return created


def _announce_suspend(body: kopf.Body, suspend: bool) -> None:
    if suspend:
        what, message = "Suspended", "Scaled to zero by spec.suspend; the workspace is kept."
    else:
        what, message = "Resumed", "Scaled back to one; the same workspace is mounted."
    kopf.event(body, type="Normal", reason=what, message=message)


def _refuse(
    body: kopf.Body,
    patch: kopf.Patch,
    reason: str,
    message: str,
    *,
    permanent: bool = False,
    delay: float = 30.0,
) -> NoReturn:
    """Ready=False with the reason, a Warning Event, and no hot loop (PermanentError or delay)."""
    current = ExperimentSandboxStatus.model_validate(body.status or {})
    generation = body.metadata.get("generation")
    new = condition_patch(
        current,
        "Ready",
        "False",
        reason,
        message,
        generation=generation,
        phase="Failed" if permanent else "Pending",
    )
    patch.status.update(status_patch(current, new))
    kopf.warn(body, reason=reason, message=message)
    if permanent:
        raise kopf.PermanentError(message)
    raise kopf.TemporaryError(message, delay=delay)


async def observe_child(
    *,
    namespace: str | None,
    labels: Mapping[str, str],
    memo: kopf.Memo,
    index_sandbox: kopf.Index[Any, Any],
    index_class: kopf.Index[str, Any],
    index_child_sts: kopf.Index[Any, Any],
    index_child_pod: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    """A StatefulSet or pod of ours changed: re-derive the sandbox's status, write on change."""
    raw = _first(index_sandbox, (namespace, labels[SANDBOX_LABEL]))
    if raw is not None:
        await _rederive(raw, memo, index_class, index_child_sts, index_child_pod)


async def observe_sandbox(
    *,
    body: kopf.Body,
    type: str | None,
    memo: kopf.Memo,
    index_class: kopf.Index[str, Any],
    index_child_sts: kopf.Index[Any, Any],
    index_child_pod: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    """The sandbox itself changed: re-derive too. A handler's status patch computed before the
    pod existed can land after a child event already wrote the newer status; seeing our own
    write come back here puts the observed state back (status is a function of the indexes)."""
    if type == "DELETED":
        observed.forget(memo, body.metadata.uid)
        return
    raw = {k: dict(body.get(k) or {}) for k in ("metadata", "spec", "status")}
    await _rederive(raw, memo, index_class, index_child_sts, index_child_pod, need_class=True)


async def _rederive(
    raw: Mapping[str, Any],
    memo: kopf.Memo,
    index_class: kopf.Index[str, Any],
    index_child_sts: kopf.Index[Any, Any],
    index_child_pod: kopf.Index[Any, Any],
    *,
    need_class: bool = False,
) -> None:
    if raw["metadata"].get("deletionTimestamp"):
        return
    try:
        sandbox = Sandbox.from_body(raw)
    except ValidationError:
        return  # the sandbox handler reports it
    if unattributed(sandbox.spec.owner, raw["metadata"].get("annotations") or {}):
        return  # OwnerUnknown: the sandbox handler's condition stands
    try:
        cls = _class(index_class, sandbox.spec.class_)
    except ValidationError:
        cls = None  # the sandbox handler reports it; the URL falls back to the Service's
    if cls is None and need_class:
        return  # ClassNotFound / InvalidClass: the sandbox handler's condition stands
    changes, new = _status(sandbox, raw.get("status") or {}, cls, index_child_sts, index_child_pod)
    observed.ready_transition(memo, raw["metadata"], raw.get("status") or {}, new.dump())
    if changes:
        await memo.kube.patch(
            API_VERSION,
            "ExperimentSandbox",
            sandbox.namespace,
            sandbox.name,
            {"status": changes},
            subresource="status",
        )


def untyped(fn: Callable[..., Any]) -> Any:
    """kopf passes indexes as extra keyword arguments its handler protocols do not declare."""
    return fn


# controller-runtime style reconcile metrics (controller/observed.py) around each handler.
_reconcile = observed.observed("experimentsandbox", reconcile)
_observe_child = observed.observed("experimentsandbox-status", observe_child)
_observe_sandbox = observed.observed("experimentsandbox-status", observe_sandbox)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.index(GROUP, VERSION, "sandboxclasses", id="index_class", registry=registry)(index_class)
    kopf.index(*SANDBOXES, id="index_sandbox", registry=registry)(index_sandbox)
    kopf.index("apps", "v1", "statefulsets", labels=OURS, id="index_child_sts", registry=registry)(
        index_child
    )
    kopf.index("v1", "pods", labels=OURS, id="index_child_pod", registry=registry)(index_child)
    for decorate in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorate(*SANDBOXES, id="reconcile", registry=registry)(untyped(_reconcile))
    kopf.on.event("apps", "v1", "statefulsets", labels=OURS, registry=registry)(
        untyped(_observe_child)
    )
    kopf.on.event("v1", "pods", labels=OURS, registry=registry)(untyped(_observe_child))
    kopf.on.event(*SANDBOXES, id="observe_sandbox", registry=registry)(untyped(_observe_sandbox))
