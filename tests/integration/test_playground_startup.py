"""Sandboxes that never start are suspended after the class's startupTimeout (issue 16.5).

Through the real kubectl as alice: the simulated kubelet keeps the annotated sandboxes' containers
in CrashLoopBackOff or ImagePullBackOff while their pods hold GPUs; the operator's loop suspends
them with suspendedReason StartFailed, and leaves the healthy one in the same class alone.
"""

from __future__ import annotations

import json

import pytest

from sandboxer.devcluster.playground import Playground
from tests.integration.conftest import Kubectl
from tests.integration.manifests import sandbox_class
from tests.integration.test_playground_idle_budget import at, events, get, wait

pytestmark = pytest.mark.slow  # a whole playground run
# alice's namespace, where admin reads her pods and claims (sandboxer-user grants neither).
IN_TEAM = ("-n", "team-ml")

TIMEOUT = 15  # seconds: long enough for a healthy notebook to get Ready on a busy machine

FLAKY_CLASS = sandbox_class("flaky", startupTimeout=f"{TIMEOUT}s")


def sandbox(name: str, start: str | None) -> str:
    annotations = {"sim.sandboxer.io/container-start": start} if start else {}
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "ExperimentSandbox",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"class": "flaky", "gpus": 1},
        }
    )


def condition(obj: dict[str, object], type_: str) -> dict[str, str]:
    status = obj["status"]
    assert isinstance(status, dict)
    return next(c for c in status["conditions"] if c["type"] == type_)


async def test_a_crash_looping_sandbox_is_suspended_as_start_failed_a_healthy_one_is_not(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    kubectl = pg_kubectl
    await kubectl("apply", "-f", "-", input=FLAKY_CLASS)
    for name, start in (("crashy", "CrashLoopBackOff"), ("pully", "ImagePullBackOff"),
                        ("fine", None)):  # fmt: skip
        await kubectl("apply", "-f", "-", user="alice", input=sandbox(name, start))
    await wait(kubectl, "--for=condition=Ready", "esb/fine")

    # The kubelet's view, as on a real node: bound, GPUs held, the container never ready.
    await wait(kubectl, "--for=jsonpath={.status.containerStatuses[0].restartCount}=2",
               "pod/crashy-0", *IN_TEAM, user="admin")  # fmt: skip
    pod = await get(kubectl, "pod", "crashy-0", *IN_TEAM, user="admin")
    [cs] = pod["status"]["containerStatuses"]
    assert (pod["status"]["phase"], cs["ready"]) == ("Running", False)
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    pulling = await get(kubectl, "pod", "pully-0", *IN_TEAM, user="admin")
    assert pulling["spec"]["nodeName"]
    assert pulling["status"]["phase"] == "Pending"
    assert pulling["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == (
        "ImagePullBackOff"
    )
    crashy = await get(kubectl, "esb", "crashy")
    if not crashy["spec"].get("suspend"):  # still within the timeout: shown, not yet acted on
        assert condition(crashy, "Ready")["reason"] == "CrashLoopBackOff"

    within = TIMEOUT + 20
    await wait(kubectl, "--for=jsonpath={.status.suspendedReason}=StartFailed", "esb/crashy",
               "esb/pully", within=within)  # fmt: skip
    crashy = await get(kubectl, "esb", "crashy")
    assert crashy["spec"]["suspend"] is True
    started = condition(crashy, "Started")
    assert (started["status"], started["reason"]) == ("False", "StartFailed")
    assert f"not Ready {TIMEOUT}s after its pod was scheduled" in started["message"]
    assert "container notebook: CrashLoopBackOff (back-off" in started["message"]
    [event] = [e for e in await events(kubectl, "crashy") if e["reason"] == "StartFailed"]
    assert event["type"] == "Warning"
    assert "container notebook: CrashLoopBackOff" in event["message"]
    # From the binding (the operator's Scheduled condition moved again when the pod went).
    bound = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    scheduled = at(bound["lastTransitionTime"])
    waited = (at(event["lastTimestamp"]) - scheduled).total_seconds()
    assert waited >= TIMEOUT - 1, waited  # Event stamps have whole seconds
    pully = await get(kubectl, "esb", "pully")
    assert "container notebook: ImagePullBackOff" in condition(pully, "Started")["message"]
    # Suspended like any other: the pod goes, its GPUs with it; the workspace stays.
    await wait(kubectl, "--for=delete", "pod/crashy-0", *IN_TEAM, user="admin")
    await get(kubectl, "pvc", "crashy-workspace", *IN_TEAM, user="admin")

    fine = await get(kubectl, "esb", "fine")
    assert fine["spec"].get("suspend") is False
    assert fine["status"]["phase"] == "Ready"
    assert "StartFailed" not in [e["reason"] for e in await events(kubectl, "fine")]
