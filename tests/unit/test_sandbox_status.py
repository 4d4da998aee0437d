"""Status derivation from the observed StatefulSet and pod."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sandboxer.api.sandbox import ExperimentSandboxStatus
from sandboxer.api.types import get_condition
from sandboxer.manifests.status import derive_status, status_patch
from tests.sandbox_fixtures import make_sandbox

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STS = {"metadata": {"name": "nb"}, "spec": {"replicas": 1}, "status": {}}
URL = "http://nb.team-a.svc:8888/"


def pod(*conditions: dict[str, Any], node: str | None = "gpu-1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "nb-0"},
        "spec": {"nodeName": node},
        "status": {"conditions": list(conditions), **status},
    }


def derive(
    pod_: dict[str, Any] | None,
    current: ExperimentSandboxStatus | None = None,
    at: datetime = T0,
    **spec: Any,
) -> ExperimentSandboxStatus:
    return derive_status(
        make_sandbox(**spec), current or ExperimentSandboxStatus(), STS, pod_, url=URL, at=at
    )


def cond(status: ExperimentSandboxStatus, type_: str) -> tuple[str, str]:
    c = get_condition(status.conditions, type_)
    assert c is not None
    assert c.observed_generation == 3
    return c.status, c.reason


def test_running_ready_pod() -> None:
    status = derive(
        pod({"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"})
    )
    assert cond(status, "Ready") == ("True", "NotebookReady")
    assert cond(status, "Scheduled") == ("True", "Scheduled")
    assert cond(status, "Suspended") == ("False", "Running")
    assert (status.phase, status.node, status.url) == ("Ready", "gpu-1", URL)
    assert status.started_at == T0
    assert status.observed_generation == 3


def test_no_gpu_left_is_insufficient_gpu_with_the_scheduler_message() -> None:
    message = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    status = derive(
        pod(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            },
            node=None,
        )
    )
    assert cond(status, "Scheduled") == ("False", "InsufficientGPU")
    ready = get_condition(status.conditions, "Ready")
    assert ready is not None
    assert ready.reason == "InsufficientGPU"
    assert ready.message.startswith(message)
    assert "billed only once its pod runs" in ready.message
    assert status.phase == "Pending"
    assert status.node is None


def test_other_unschedulable_keeps_the_scheduler_reason() -> None:
    status = derive(
        pod(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/4 nodes: 4 node(s) had untolerated taint",
            },
            node=None,
        )
    )
    assert cond(status, "Scheduled") == ("False", "Unschedulable")


def test_image_pull_failure_is_failed_with_the_reason() -> None:
    waiting = {
        "name": "notebook",
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}},
    }
    status = derive(pod({"type": "PodScheduled", "status": "True"}, containerStatuses=[waiting]))
    assert cond(status, "Ready") == ("False", "ImagePullBackOff")
    assert status.phase == "Failed"
    ready = get_condition(status.conditions, "Ready")
    assert ready is not None
    # The start timeout quotes this message: it names the container and the kubelet's words.
    assert ready.message == "container notebook: ImagePullBackOff (not found)"


def test_suspended_drops_url_and_node_and_says_user() -> None:
    running = derive(pod({"type": "Ready", "status": "True"}))
    suspending = derive(pod({"type": "Ready", "status": "True"}), running, suspend=True)
    assert suspending.phase == "Suspending"
    gone = derive(None, suspending, suspend=True)
    assert gone.phase == "Suspended"
    assert cond(gone, "Suspended") == ("True", "User")
    assert cond(gone, "Scheduled") == ("False", "Suspended")
    assert gone.url is None
    assert gone.node is None
    assert gone.suspended_reason == "User"


def test_suspension_by_idle_reclaim_keeps_its_reason() -> None:
    current = ExperimentSandboxStatus(suspended_reason="Idle")
    status = derive(None, current, suspend=True)
    assert cond(status, "Suspended") == ("True", "Idle")


def test_reason_written_just_before_suspension_survives_and_resume_clears_it() -> None:
    running = derive(pod({"type": "Ready", "status": "True"}))
    # The loop patched status first (reason Idle); spec.suspend is not there yet.
    pending = running.model_copy(update={"suspended_reason": "Idle"})
    still_running = derive(pod({"type": "Ready", "status": "True"}), pending)
    assert still_running.suspended_reason == "Idle"
    suspended = derive(None, still_running, suspend=True)
    assert cond(suspended, "Suspended") == ("True", "Idle")
    resumed = derive(pod({"type": "Ready", "status": "True"}), suspended)
    assert resumed.suspended_reason is None
    assert cond(resumed, "Suspended")[0] == "False"


def test_transition_time_moves_only_on_change_and_patch_is_empty_then() -> None:
    ready_pod = pod({"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"})
    first = derive(ready_pod)
    again = derive(ready_pod, first, at=T0 + timedelta(minutes=5))
    assert again == first
    assert status_patch(first, again) == {}
    suspended = derive(None, first, at=T0 + timedelta(minutes=9), suspend=True)
    patch = status_patch(first, suspended)
    assert patch["url"] is None
    assert patch["node"] is None
    assert patch["phase"] == "Suspended"


def test_creating_children_one_by_one_does_not_rewrite_the_status() -> None:
    sandbox = make_sandbox()
    empty = ExperimentSandboxStatus()
    before = derive_status(sandbox, empty, None, None, url=URL, at=T0)
    with_sts = derive_status(sandbox, before, STS, None, url=URL, at=T0 + timedelta(seconds=1))
    assert status_patch(before, with_sts) == {}
    assert cond(before, "Ready") == ("False", "Provisioning")
    assert before.phase == "Provisioning"


def test_the_run_starts_at_the_first_ready_and_only_a_suspension_ends_it() -> None:
    """`startedAt` anchors maxLifetime: a readiness flap or a new pod keep it (issue 16.6)."""
    ready = pod({"type": "Ready", "status": "True"})
    first = derive(ready)
    assert first.started_at == T0
    flapped = derive(pod({"type": "Ready", "status": "False"}), first, at=T0 + timedelta(hours=1))
    assert flapped.phase != "Ready"
    again = derive(ready, flapped, at=T0 + timedelta(hours=2))
    assert cond(again, "Ready") == ("True", "NotebookReady")
    assert again.started_at == T0  # the flap did not restart the lifetime
    repodded = derive(None, again, at=T0 + timedelta(hours=3))  # the pod is being recreated
    assert derive(ready, repodded, at=T0 + timedelta(hours=4)).started_at == T0
    suspended = derive(None, again, at=T0 + timedelta(hours=5), suspend=True)
    assert suspended.started_at is None
    resumed = derive(ready, suspended, at=T0 + timedelta(hours=6))
    assert resumed.started_at == T0 + timedelta(hours=6)  # a new run after the resume
