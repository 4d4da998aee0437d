"""What the simulated kubelet reports for a container that cannot start, as a real one does.

The pod annotation `sim.sandboxer.io/container-start` picks it: `Running` (the default, also for
an unknown value), `CrashLoopBackOff` (the process exits 1 at once; the pod is Running with its
container waiting between restarts, restartCount growing on the kubelet's back-off of 10 s
doubling to 5 min) or `ImagePullBackOff` (the image never arrives; the pod stays Pending). Either
way the pod is bound and its devices allocated, so its GPUs are held and metered.
"""

from __future__ import annotations

from typing import Any, Literal

from sandboxer.manifests.labels import CONTAINER_START_ANNOTATION

StartMode = Literal["Running", "CrashLoopBackOff", "ImagePullBackOff"]
BACKOFF_FIRST, BACKOFF_MAX = 10.0, 300.0  # kubelet's crash back-off (pkg/kubelet/kubelet.go)


def start_mode(pod: dict[str, Any]) -> StartMode:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(CONTAINER_START_ANNOTATION)
    if value in ("CrashLoopBackOff", "ImagePullBackOff"):
        return value  # type: ignore[no-any-return]
    return "Running"


def backoff(restarts: int) -> float:
    """Seconds the kubelet waits before restart number `restarts + 1`."""
    return float(min(BACKOFF_FIRST * 2.0 ** max(restarts - 1, 0), BACKOFF_MAX))


def go_duration(seconds: float) -> str:
    """As Go's time.Duration prints whole seconds: "10s", "1m20s", "5m0s"."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def failing_status(
    running: dict[str, Any], pod: dict[str, Any], mode: StartMode, restarts: int, now: str
) -> dict[str, Any]:
    """The pod status for `mode`, from the status it would have if its containers ran."""
    meta = pod["metadata"]
    ref = f"{meta['name']}_{meta.get('namespace', '')}({meta['uid']})"
    statuses = []
    for c in running.get("containerStatuses") or []:
        base = {**c, "ready": False, "started": False}
        if mode == "ImagePullBackOff":
            base.pop("containerID", None)  # no container was ever created
            message = f'Back-off pulling image "{c.get("image", "")}"'
            waiting = {"reason": "ImagePullBackOff", "message": message}
            statuses.append(
                {**base, "imageID": "", "restartCount": 0, "state": {"waiting": waiting}}
            )
            continue
        message = (
            f"back-off {go_duration(backoff(restarts))} restarting failed "
            f"container={c.get('name', '')} pod={ref}"
        )
        terminated = {
            "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now,
            "containerID": c.get("containerID", ""),
        }  # fmt: skip
        statuses.append(
            {
                **base,
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                "lastState": {"terminated": terminated},
            }
        )
    phase = "Pending" if mode == "ImagePullBackOff" else "Running"
    return {**running, "phase": phase, **_unready(running, statuses)}


def probing_status(running: dict[str, Any]) -> dict[str, Any]:
    """Containers started, readiness probe not passed yet: Running, but not Ready."""
    statuses = [{**c, "ready": False} for c in running.get("containerStatuses") or []]
    return {**running, **_unready(running, statuses)}


def _unready(running: dict[str, Any], statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """Ready and ContainersReady False for these container statuses, as the kubelet says it."""
    names = ", ".join(str(c.get("name", "")) for c in statuses)
    unready = {
        "status": "False",
        "reason": "ContainersNotReady",
        "message": f"containers with unready status: [{names}]",
    }
    conditions = [
        {**c, **unready} if c["type"] in ("Ready", "ContainersReady") else c
        for c in running.get("conditions") or []
    ]
    return {"conditions": conditions, "containerStatuses": statuses}
