"""Status of a sandbox derived from what really runs: its StatefulSet and its pod.

Pure: the handlers pass the observed objects (plain dicts, as the API returns them) and the
current status; the result is the new status. Conditions move their lastTransitionTime only when
their status changes (`set_condition`), so re-deriving the same state is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sandboxer.api.sandbox import ExperimentSandboxStatus, Phase
from sandboxer.api.types import Condition, ConditionStatus, get_condition, now, set_condition
from sandboxer.manifests.inputs import Sandbox

# Container waiting reasons that will not fix themselves: the user must change something.
_BROKEN_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
    }
)


def _pod_condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return None


def _waiting_reason(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first waiting container's reason, and a message naming the container, as
    "container notebook: CrashLoopBackOff (back-off 10s restarting failed container=...)"."""
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason, detail = str(waiting["reason"]), str(waiting.get("message") or "")
            text = f"container {cs.get('name', '')}: {reason}"
            return reason, f"{text} ({detail})" if detail else text
    return None


def _is_gpu_shortage(message: str) -> bool:
    # The scheduler says e.g. "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    return "Insufficient nvidia.com/" in message


# Said where the user looks: a sandbox waiting for a GPU holds its place under the budget's
# concurrency limit, and costs nothing until its pod runs (the ledger meters what nodes measure).
WAITING_FOR_GPU = (
    "Waiting for a free GPU: this sandbox counts against your budget's maxConcurrentGpus now, "
    "and is billed only once its pod runs."
)


def _scheduled(pod: Mapping[str, Any] | None, suspended: bool) -> tuple[ConditionStatus, str, str]:
    if pod is None:
        if suspended:
            return "False", "Suspended", "The sandbox is suspended; no pod is scheduled."
        return "Unknown", "PodNotCreated", "Waiting for the notebook pod."
    cond = _pod_condition(pod, "PodScheduled")
    node = pod.get("spec", {}).get("nodeName")
    if cond is None or cond.get("status") != "True":
        message = str((cond or {}).get("message", ""))
        if cond is None and not message:
            return "Unknown", "Pending", "The pod is waiting for the scheduler."
        if _is_gpu_shortage(message):
            return "False", "InsufficientGPU", f"{message} {WAITING_FOR_GPU}"
        return "False", str((cond or {}).get("reason") or "Unschedulable"), message
    return "True", "Scheduled", f"Scheduled on node {node}." if node else "Scheduled."


def derive_status(
    sandbox: Sandbox,
    current: ExperimentSandboxStatus,
    statefulset: Mapping[str, Any] | None,
    pod: Mapping[str, Any] | None,
    *,
    url: str | None,
    at: datetime | None = None,
) -> ExperimentSandboxStatus:
    """The new status from the observed children; `current` keeps other writers' fields."""
    at = at or now()
    gen = sandbox.generation
    suspended = sandbox.spec.suspend
    conditions = list(current.conditions)

    was_suspended = (cond := get_condition(conditions, "Suspended")) is not None and (
        cond.status == "True"
    )
    if suspended:
        susp_reason = current.suspended_reason or "User"
    elif was_suspended:
        susp_reason = None  # resumed
    else:
        # The loop writes the reason just before it sets spec.suspend: keep it for that moment.
        susp_reason = current.suspended_reason
    conditions = set_condition(
        conditions,
        "Suspended",
        "True" if suspended else "False",
        susp_reason or "Running",
        "Scaled to zero; the workspace volume is kept. Set spec.suspend: false to resume."
        if suspended
        else "",
        generation=gen,
        at=at,
    )

    sched_status, sched_reason, sched_message = _scheduled(pod, suspended)
    conditions = set_condition(
        conditions, "Scheduled", sched_status, sched_reason, sched_message, generation=gen, at=at
    )

    ready_cond = _pod_condition(pod, "Ready") if pod is not None else None
    waiting = _waiting_reason(pod) if pod is not None else None
    phase: Phase
    if suspended:
        phase = "Suspending" if pod is not None else "Suspended"
        ready = ("False", "Suspended", "The sandbox is suspended.")
    elif statefulset is None or pod is None:
        # One reason until a pod exists, so creating each child does not rewrite the status.
        phase, ready = "Provisioning", ("False", "Provisioning", "Creating the notebook pod.")
    elif ready_cond is not None and ready_cond.get("status") == "True":
        phase, ready = "Ready", ("True", "NotebookReady", "JupyterLab answers on /api.")
    elif waiting is not None and waiting[0] in _BROKEN_WAITING:
        phase, ready = "Failed", ("False", waiting[0], waiting[1])
    elif sched_status == "False":
        phase, ready = "Pending", ("False", sched_reason, sched_message)
    else:
        phase, ready = "Provisioning", ("False", "Starting", "Waiting for JupyterLab to start.")
    conditions = set_condition(conditions, "Ready", *ready, generation=gen, at=at)  # type: ignore[arg-type]

    ready_now = get_condition(conditions, "Ready")
    node = pod.get("spec", {}).get("nodeName") if pod is not None else None
    return current.model_copy(
        update={
            "conditions": conditions,
            "phase": phase,
            "url": None if suspended else url,
            "node": node if sched_status == "True" else None,
            "suspended_reason": susp_reason,
            "observed_generation": gen,
            "started_at": _run_started(current, suspended, ready_now),
        }
    )


def _run_started(
    current: ExperimentSandboxStatus, suspended: bool, ready: Condition | None
) -> datetime | None:
    """When the current run first became Ready: a run ends only with a suspension.

    A readiness flap, a restarted or rescheduled pod, or a resize keep the run (and so the
    lifetime's anchor); suspending clears it and the next Ready after a resume starts a new one.
    """
    if suspended:
        return None
    if current.started_at is not None:
        return current.started_at
    if ready is not None and ready.status == "True":
        return ready.last_transition_time
    return None


def condition_patch(
    current: ExperimentSandboxStatus,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    phase: Phase | None = None,
) -> ExperimentSandboxStatus:
    """Set one condition (e.g. Ready=False ClassNotFound) without looking at children."""
    conditions = set_condition(
        current.conditions, type_, status, reason, message, generation=generation
    )
    update: dict[str, Any] = {"conditions": conditions, "observed_generation": generation}
    if phase is not None:
        update["phase"] = phase
    return current.model_copy(update=update)


def status_patch(current: ExperimentSandboxStatus, new: ExperimentSandboxStatus) -> dict[str, Any]:
    """Merge patch from current to new status: changed keys, and None for keys now unset."""
    before, after = current.dump(), new.dump()
    changes: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    changes.update({k: None for k in before if k not in after})
    return changes
