"""The simulated kubelet's failing containers, and how the annotation reaches the pod."""

from __future__ import annotations

from typing import Any

from sandboxer.api.sandbox import ExperimentSandboxStatus
from sandboxer.api.types import get_condition
from sandboxer.controller.children import Child, desired_children
from sandboxer.devcluster.kubelet import backoff, failing_status, go_duration, start_mode
from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import CONTAINER_START_ANNOTATION
from sandboxer.manifests.status import derive_status
from tests.sandbox_fixtures import example_class

NOW = "2026-12-03T10:00:00Z"
POD = {"metadata": {"name": "nb-0", "namespace": "team-ml", "uid": "u1"}}
RUNNING: dict[str, Any] = {
    "phase": "Running",
    "conditions": [
        {"type": t, "status": "True", "lastTransitionTime": NOW}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                  "PodScheduled")
    ],
    "containerStatuses": [
        {"name": "notebook", "image": "nb:1", "imageID": "nb:1", "containerID": "containerd://c1",
         "ready": True, "started": True, "restartCount": 0, "state": {"running": {}}}
    ],
}  # fmt: skip


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_crash_loop_runs_unready_with_restarts_and_the_kubelets_message() -> None:
    status = failing_status(RUNNING, POD, "CrashLoopBackOff", 3, NOW)
    assert status["phase"] == "Running"
    [cs] = status["containerStatuses"]
    assert (cs["ready"], cs["started"], cs["restartCount"]) == (False, False, 3)
    assert cs["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": "back-off 40s restarting failed container=notebook pod=nb-0_team-ml(u1)",
    }
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert conditions(status) == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "False",
        "ContainersReady": "False", "PodScheduled": "True",
    }  # fmt: skip
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "containers with unready status: [notebook]"


def test_image_pull_back_off_stays_pending_without_a_container() -> None:
    status = failing_status(RUNNING, POD, "ImagePullBackOff", 0, NOW)
    assert status["phase"] == "Pending"
    [cs] = status["containerStatuses"]
    assert "containerID" not in cs
    assert cs["state"]["waiting"] == {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "nb:1"',
    }
    assert conditions(status)["Ready"] == "False"


def test_back_off_doubles_from_ten_seconds_to_five_minutes() -> None:
    assert [go_duration(backoff(n)) for n in range(1, 8)] == [
        "10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s",
    ]  # fmt: skip


def test_the_mode_comes_from_the_pod_annotation_and_defaults_to_running() -> None:
    def pod(value: str | None) -> dict[str, Any]:
        annotations = {CONTAINER_START_ANNOTATION: value} if value else {}
        return {"metadata": {"annotations": annotations}}

    assert start_mode(pod(None)) == "Running"
    assert start_mode(pod("Bogus")) == "Running"
    assert start_mode(pod("CrashLoopBackOff")) == "CrashLoopBackOff"
    assert start_mode(pod("ImagePullBackOff")) == "ImagePullBackOff"


def sandbox(annotations: dict[str, str]) -> Sandbox:
    return Sandbox.from_body(
        {
            "metadata": {"name": "nb", "namespace": "team-ml", "annotations": annotations},
            "spec": {"class": "h100", "gpus": 1, "owner": "alice"},
        }
    )


def statefulset(sb: Sandbox) -> Child:
    return next(
        c for c in desired_children(sb, example_class(), []) if c.obj["kind"] == "StatefulSet"
    )


def test_only_the_container_start_annotation_reaches_the_pod_template() -> None:
    sb = sandbox(
        {CONTAINER_START_ANNOTATION: "CrashLoopBackOff", "sim.sandboxer.io/gpu-utilization": "80"}
    )
    sts = statefulset(sb)
    template = sts.obj["spec"]["template"]["metadata"]["annotations"]
    assert template[CONTAINER_START_ANNOTATION] == "CrashLoopBackOff"
    # Utilization is read from the sandbox; on the template it would restart the pod.
    assert "sim.sandboxer.io/gpu-utilization" not in template
    assert sts.patch is not None
    patched = sts.patch["spec"]["template"]["metadata"]["annotations"]
    assert patched[CONTAINER_START_ANNOTATION] == "CrashLoopBackOff"

    dropped = statefulset(sandbox({}))
    assert dropped.patch is not None
    # Removed from the sandbox: the merge patch removes it from the template too.
    annotations = dropped.patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CONTAINER_START_ANNOTATION] is None
    assert (
        CONTAINER_START_ANNOTATION not in dropped.obj["spec"]["template"]["metadata"]["annotations"]
    )


def test_the_sandbox_status_names_the_container_and_the_simulated_reason() -> None:
    pod = {**POD, "spec": {"nodeName": "gpu-1"},
           "status": failing_status(RUNNING, POD, "CrashLoopBackOff", 1, NOW)}  # fmt: skip
    sts = {"metadata": {"name": "nb"}, "spec": {"replicas": 1}, "status": {}}
    status = derive_status(sandbox({}), ExperimentSandboxStatus(), sts, pod, url=None)
    ready = get_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason, status.phase) == ("False", "CrashLoopBackOff", "Failed")
    assert ready.message == (
        "container notebook: CrashLoopBackOff "
        "(back-off 10s restarting failed container=notebook pod=nb-0_team-ml(u1))"
    )
