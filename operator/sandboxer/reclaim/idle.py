"""GPU (and optional Jupyter) activity of a sandbox, from the agent's node reports.

Idleness is decided from activity, not from process presence: on a real node a notebook that
imported torch keeps a CUDA context (a listed process, some memory) at 0 % for as long as its
kernel lives, so presence would keep every such notebook busy forever. A GPU is busy when its
utilization is above the class threshold, at the report or at any sample the agent took since
the last one (the agent's `lastActiveAt`). Presence counts only where there is no utilization
reading (MIG: NVML has none per instance), or when the class opts in with `countProcesses`.
The sandbox is busy when any GPU is busy; with Jupyter activity on, a kernel or terminal action
also counts. `last_active_at` is the last instant any signal said busy; the idle window runs
from there (see `policy.decide`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.reclaim.policy import ReclaimPolicy


@dataclass(frozen=True, slots=True)
class GPUActivity:
    uuid: str
    utilization_percent: float | None  # None: not measurable (MIG)
    processes: int
    last_active_at: datetime | None = None  # the agent's: last sample above its threshold


@dataclass(frozen=True, slots=True)
class Activity:
    last_active_at: datetime | None
    busy: bool  # at the latest observation
    signals: str  # what the latest observation saw, for condition messages


def observe(
    prev: Activity | None,
    gpus: Sequence[GPUActivity],
    at: datetime,
    policy: ReclaimPolicy,
    *,
    jupyter_last_activity: datetime | None = None,
) -> Activity:
    """Fold one observation (one report of the sandbox's node) into the activity record."""
    last = prev.last_active_at if prev else None
    busy_reasons: list[str] = []
    idle_reasons: list[str] = []
    for gpu in sorted(gpus, key=lambda g: g.uuid):
        why = _gpu_busy(gpu, policy)
        (busy_reasons if why else idle_reasons).append(why or _gpu_idle(gpu))
        if gpu.last_active_at is not None and gpu.last_active_at <= at:
            # Busy between two reports (a short burst the report's sample missed).
            seen = gpu.last_active_at.astimezone(UTC)
            last = seen if last is None else max(last, seen)
    gpu_busy = bool(busy_reasons)
    if gpu_busy:
        last = at if last is None else max(last, at)
    signals = "; ".join(busy_reasons) if gpu_busy else _all_idle(idle_reasons, policy)
    if policy.use_jupyter_activity and jupyter_last_activity is not None:
        seen = jupyter_last_activity.astimezone(UTC)
        last = seen if last is None else max(last, seen)
        signals += f"; Jupyter last active {seen:%H:%M:%S} UTC"
    return Activity(last, gpu_busy, signals)


ACTIVITY = ("SmActivity", "DutyCycle")  # signals that measure work, not presence


def activity_from_report(report: GPUNodeReportStatus, pod_uid: str) -> list[GPUActivity]:
    """The GPUs a pod holds in one node report, with utilization and process counts."""
    devices = {d.uuid: d for d in report.gpus}
    out: list[GPUActivity] = []
    for pod in report.pods:
        if pod.uid != pod_uid:
            continue
        for counters in pod.gpus:
            device = devices.get(counters.uuid)
            util = counters.utilization_percent
            if util is None and device is not None and device.utilization_signal in ACTIVITY:
                util = device.utilization_percent
            processes = device.processes if device is not None else 0
            out.append(GPUActivity(counters.uuid, util, processes, counters.last_active_at))
    return out


def _gpu_busy(gpu: GPUActivity, policy: ReclaimPolicy) -> str:
    if gpu.utilization_percent is not None and gpu.utilization_percent > policy.threshold:
        return f"{gpu.uuid} at {gpu.utilization_percent:g}%"
    counts = policy.count_processes or gpu.utilization_percent is None
    if counts and gpu.processes > 0:
        plural = "es" if gpu.processes != 1 else ""
        why = "no utilization reading" if gpu.utilization_percent is None else "countProcesses"
        return f"{gpu.uuid} runs {gpu.processes} compute process{plural} ({why})"
    return ""


def _gpu_idle(gpu: GPUActivity) -> str:
    if gpu.utilization_percent is None:
        return f"{gpu.uuid} without compute processes (MIG: no utilization reading)"
    held = f", {gpu.processes} idle process(es) holding it" if gpu.processes else ""
    return f"{gpu.uuid} at {gpu.utilization_percent:g}%{held}"


def _all_idle(reasons: list[str], policy: ReclaimPolicy) -> str:
    rule = f"every GPU at or below {policy.threshold:g}%"
    if policy.count_processes:
        rule += " with no compute process"
    return f"{rule} ({', '.join(reasons)})" if reasons else "no GPUs reported"
