"""Start timeout: a sandbox whose pod holds GPUs but whose notebook never comes up is suspended.

A pod in CrashLoopBackOff or ImagePullBackOff is scheduled, so its GPUs are allocated (and
billed), yet it will not fix itself. Read from the sandbox's own status only (conditions the
handlers derive from the pod), so a restarted or new leader reaches the same decision:

    not Ready since = max(Scheduled=True lastTransitionTime, Ready=False lastTransitionTime)
    suspend when    now >= not Ready since + class startupTimeout   (0s: off)

The later of the two anchors gives a resumed or rescheduled pod a full timeout again, and counts
a notebook that was Ready and then broke from when it stopped being Ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sandboxer.api.sandbox import ExperimentSandboxStatus
from sandboxer.api.types import format_duration, get_condition


@dataclass(frozen=True, slots=True)
class StartFailed:
    message: str


def not_ready_since(status: ExperimentSandboxStatus, generation: int | None) -> datetime | None:
    """Since when a scheduled pod's notebook is not Ready; None when that does not apply."""
    scheduled = get_condition(status.conditions, "Scheduled")
    ready = get_condition(status.conditions, "Ready")
    if scheduled is None or ready is None or scheduled.status != "True" or ready.status != "False":
        return None
    if ready.reason == "Suspended":
        return None  # a status from before a resume, not re-derived yet
    if generation is not None and ready.observed_generation not in (None, generation):
        return None  # derived for an older spec: the handler re-derives it first
    stamps = [t for t in (scheduled.last_transition_time, ready.last_transition_time) if t]
    return max(stamps) if stamps else None


def check_startup(
    status: ExperimentSandboxStatus,
    generation: int | None,
    timeout: timedelta,
    now: datetime,
) -> StartFailed | datetime | None:
    """StartFailed once the timeout has passed; else when it will (None: nothing to wait for)."""
    if timeout <= timedelta(0):
        return None
    since = not_ready_since(status, generation)
    if since is None:
        return None
    due = since + timeout
    if now < due:
        return due
    ready = get_condition(status.conditions, "Ready")
    assert ready is not None  # not_ready_since checked it
    where = f" on {status.node}" if status.node else ""
    what = ready.message or ready.reason
    return StartFailed(
        f"not Ready {format_duration(timeout)} after its pod was scheduled{where}: {what}"
    )
