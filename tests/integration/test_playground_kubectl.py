"""The engineer's flow through the real kubectl against the whole playground: the embedded API,
the real operator (webhooks registered in the API's admission) and a real agent per node."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import yaml

from sandboxer.devcluster.playground import Playground
from tests.integration.conftest import ROOT, Kubectl, Result

pytestmark = pytest.mark.slow  # a whole playground or benchmark run each

SANDBOX = str(ROOT / "examples" / "sandbox.yaml")
CLASS = str(ROOT / "examples" / "class-h100.yaml")


def manifest(name: str, gpus: int, annotations: dict[str, str] | None = None) -> str:
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "ExperimentSandbox",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"class": "h100", "gpus": gpus},
        }
    )


TEAM = "team-ml"  # alice's namespace
# The chart's sandboxer-user role grants sandboxes only: a sandbox's children (StatefulSet, pod,
# Service, Secret, claim, NetworkPolicy) are read here as admin, in alice's namespace.
AS_ADMIN = ("-n", TEAM)


async def get(kubectl: Kubectl, *what: str, user: str = "alice") -> Any:
    return (await kubectl("get", *what, "-o", "json", user=user)).json()


async def child(kubectl: Kubectl, *what: str) -> Any:
    return await get(kubectl, *what, *AS_ADMIN, user="admin")


async def names(kubectl: Kubectl, kind: str) -> list[str]:
    listed = await child(kubectl, kind, "-l", "sandboxer.io/sandbox=my-notebook")
    return [item["metadata"]["name"] for item in listed["items"]]


async def wait(kubectl: Kubectl, *args: str, within: int = 30, user: str = "alice") -> Result:
    where = AS_ADMIN if user == "admin" else ()
    return await kubectl("wait", *args, *where, f"--timeout={within}s", user=user)


async def test_alice_applies_waits_suspends_resumes_and_deletes(pg_kubectl: Kubectl) -> None:
    kubectl = pg_kubectl
    await kubectl("apply", "-f", CLASS)  # admin; already there from the examples: unchanged
    await kubectl("apply", "-f", SANDBOX, user="alice")
    await wait(kubectl, "--for=condition=Ready", "esb/my-notebook")

    esb = await get(kubectl, "esb", "my-notebook")
    assert esb["spec"]["owner"] == "alice"  # stamped by the mutating webhook
    sts = await child(kubectl, "sts", "my-notebook")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["runAsNonRoot"] is True
    assert sts["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    for kind in ("svc", "secret", "pvc", "netpol"):
        assert await names(kubectl, kind), f"no {kind} for my-notebook"
    assert await names(kubectl, "pods") == ["my-notebook-0"]
    pvc_uid = (await child(kubectl, "pvc", "my-notebook-workspace"))["metadata"]["uid"]

    # carol, her teammate, cannot take the sandbox over (the webhook); bob, of another team,
    # cannot even reach it (RBAC).
    take_over = ("patch", "esb", "my-notebook", "--type", "merge", "-p")
    refused = await kubectl(*take_over, '{"spec":{"owner":"carol"}}', user="carol", check=False)
    assert refused.rc != 0
    assert "denied the request" in refused.stderr
    assert "belongs to 'alice'" in refused.stderr and "you are carol" in refused.stderr
    outside = await kubectl(
        *take_over, '{"spec":{"owner":"bob"}}', "-n", TEAM, user="bob", check=False
    )
    assert outside.rc != 0
    assert 'User "bob" cannot get resource "experimentsandboxes"' in outside.stderr
    assert (await get(kubectl, "esb", "my-notebook"))["spec"]["owner"] == "alice"

    # Suspend: the pod goes, the workspace stays.
    suspend = '{"spec":{"suspend":true}}'
    await kubectl("patch", "esb", "my-notebook", "--type", "merge", "-p", suspend, user="alice")
    await wait(kubectl, "--for=condition=Suspended", "esb/my-notebook")
    await wait(kubectl, "--for=delete", "pod/my-notebook-0", user="admin")
    assert (await child(kubectl, "pvc", "my-notebook-workspace"))["metadata"]["uid"] == pvc_uid

    # Resume: the same claim comes back mounted.
    resume = '{"spec":{"suspend":false}}'
    await kubectl("patch", "esb", "my-notebook", "--type", "merge", "-p", resume, user="alice")
    await wait(kubectl, "--for=condition=Ready", "esb/my-notebook")
    pod = await child(kubectl, "pod", "my-notebook-0")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
              if "persistentVolumeClaim" in v]  # fmt: skip
    assert claims == ["my-notebook-workspace"]
    assert (await child(kubectl, "pvc", "my-notebook-workspace"))["metadata"]["uid"] == pvc_uid

    # Delete cascades to every child through owner references.
    await kubectl("delete", "esb", "my-notebook", "--wait=true", user="alice")
    for kind in ("sts", "svc", "secret", "pvc", "netpol", "pods"):
        await wait(
            kubectl, "--for=delete", kind, "-l", "sandboxer.io/sandbox=my-notebook", user="admin"
        )
        assert await names(kubectl, kind) == [], kind


async def test_over_the_class_limit_is_refused_naming_it(pg_kubectl: Kubectl) -> None:
    result = await pg_kubectl(
        "apply", "-f", "-", user="alice", input=manifest("too-big", 9), check=False
    )
    assert result.rc != 0
    assert "maxGpus 8" in result.stderr and "ask for at most 8" in result.stderr
    listed = await get(pg_kubectl, "esb")
    assert listed["items"] == []


async def test_a_negative_storage_size_is_refused_and_not_stored(pg_kubectl: Kubectl) -> None:
    negative = json.loads(manifest("negative", 1))
    negative["spec"]["storage"] = {"size": "-1Gi"}
    result = await pg_kubectl(
        "apply", "-f", "-", user="alice", input=json.dumps(negative), check=False
    )
    assert result.rc != 0
    assert "spec.storage.size: -1Gi is not a positive quantity" in result.stderr, result.stderr
    assert "leave spec.storage.size out for the class default" in result.stderr
    assert (await get(pg_kubectl, "esb"))["items"] == []


async def test_more_gpus_than_any_node_keeps_the_pod_pending(pg_kubectl: Kubectl) -> None:
    # Within the class (8) but above every node (4 each).
    await pg_kubectl("apply", "-f", "-", user="alice", input=manifest("huge", 8))
    # The operator creates the StatefulSet, then its controller the pod: `wait --for=condition`
    # on a pod that does not exist yet fails at once, so wait for the pod to exist first.
    await wait(pg_kubectl, "--for=create", "pod/huge-0", user="admin")
    await wait(pg_kubectl, "--for=condition=PodScheduled=False", "pod/huge-0", user="admin")
    pod = await child(pg_kubectl, "pod", "huge-0")
    assert pod["status"]["phase"] == "Pending"
    (scheduled,) = pod["status"]["conditions"]
    assert scheduled["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]


async def test_more_gpus_than_any_node_reports_insufficient_gpu(pg_kubectl: Kubectl) -> None:
    await pg_kubectl("apply", "-f", "-", user="alice", input=manifest("huge", 8))
    await wait(pg_kubectl, "--for=condition=Scheduled=False", "esb/huge", within=5)
    esb = await get(pg_kubectl, "esb", "huge")
    scheduled = next(c for c in esb["status"]["conditions"] if c["type"] == "Scheduled")
    assert scheduled["reason"] == "InsufficientGPU"
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]
    assert "counts against your budget's maxConcurrentGpus" in scheduled["message"]


async def test_agent_reports_count_busy_time_from_the_annotation(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    busy = manifest("busy", 1, {"sim.sandboxer.io/gpu-utilization": "80"})
    await pg_kubectl("apply", "-f", "-", user="alice", input=busy)
    await wait(pg_kubectl, "--for=condition=Ready", "esb/busy")
    pod = await child(pg_kubectl, "pod", "busy-0")
    node, uid = pod["spec"]["nodeName"], pod["metadata"]["uid"]
    (allocation,) = playground.cluster.allocations(node).values()
    ((_, (device,)),) = allocation.devices

    async def busy_seconds() -> float:
        """Busy seconds of the pod on its GPU, as `kubectl get gpunodereports -o yaml` shows."""
        out = await pg_kubectl("get", "gpunodereports", "-o", "yaml")
        reports = {r["metadata"]["name"]: r for r in yaml.safe_load(out.stdout)["items"]}
        for entry in reports[node]["status"].get("pods", []):
            if entry["uid"] == uid:
                (gpu,) = entry["gpus"]
                assert gpu["uuid"] == device  # NVML and the scheduler agree on the device
                return float(gpu.get("busySeconds", 0.0))
        return 0.0

    first = await eventually_positive(busy_seconds)
    second = await eventually_more(busy_seconds, first)
    assert second > first > 0


async def eventually_positive(read: Any, within: float = 20.0) -> float:
    return await eventually_more(read, 0.0, within)


async def eventually_more(read: Any, than: float, within: float = 20.0) -> float:
    async with asyncio.timeout(within):
        while (value := await read()) <= than:  # noqa: ASYNC110 - polls through kubectl
            await asyncio.sleep(0.2)
    return float(value)
