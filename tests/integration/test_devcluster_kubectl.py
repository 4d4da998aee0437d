"""The real kubectl against the embedded API: apply, get, patch, delete, wait, explain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml

from sandboxer.devcluster.binaries import kubectl as kubectl_binary
from sandboxer.devcluster.cluster import DevCluster
from tests.integration.conftest import ROOT, Kubectl, eventually


def configmap(name: str, namespace: str = "default") -> dict[str, object]:
    # `kubectl create configmap` sends protobuf, which the dev cluster answers with 415.
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


async def test_apply_and_get_yaml_show_server_metadata_and_defaults(kubectl: Kubectl) -> None:
    await kubectl("apply", "-f", str(ROOT / "examples/class-h100.yaml"))
    out = await kubectl("apply", "-f", str(ROOT / "examples/sandbox.yaml"), user="alice")
    assert "experimentsandbox.sandboxer.io/my-notebook created" in out.stdout

    got = await kubectl("get", "esb", "my-notebook", "-n", "team-ml", "-o", "yaml")
    obj = yaml.safe_load(got.stdout)
    meta = obj["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert obj["spec"]["suspend"] is False  # schema default applied by the server

    again = await kubectl("apply", "-f", str(ROOT / "examples/sandbox.yaml"), user="alice")
    assert "unchanged" in again.stdout


async def test_get_prints_the_crd_printer_columns(kubectl: Kubectl) -> None:
    await kubectl("apply", "-f", str(ROOT / "examples/class-h100.yaml"))
    out = (await kubectl("get", "sbc")).stdout.splitlines()
    assert out[0].split() == ["NAME", "GPU", "RESOURCE", "MAX-GPUS", "IDLE-AFTER", "AGE"]
    assert out[1].split()[:5] == ["h100", "H100", "nvidia.com/gpu", "8", "1h"]


async def test_get_with_label_selectors(kubectl: Kubectl) -> None:
    for name, tier in (("a", "web"), ("b", "db"), ("c", "")):
        await kubectl("apply", "-f", "-", input=json.dumps(configmap(name)))
        if tier:
            await kubectl("label", "configmap", name, f"tier={tier}")

    async def names(selector: str) -> list[str]:
        out = await kubectl("get", "cm", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
        return out.stdout.split()

    assert await names("tier=web") == ["a"]
    assert await names("tier!=web") == ["b", "c"]
    assert await names("tier in (web,db)") == ["a", "b"]
    assert await names("tier notin (web)") == ["b", "c"]
    assert await names("tier") == ["a", "b"]
    assert await names("!tier") == ["c"]


async def test_patch_merge_and_json_bump_generation(kubectl: Kubectl) -> None:
    await kubectl("apply", "-f", str(ROOT / "examples/class-h100.yaml"))
    await kubectl("patch", "sbc", "h100", "--type", "merge", "-p", '{"spec":{"maxGpus":4}}')
    await kubectl(
        "patch", "sbc", "h100", "--type", "json",
        "-p", '[{"op":"replace","path":"/spec/idle/after","value":"2h"}]',
    )  # fmt: skip
    await kubectl("label", "sbc", "h100", "team=ml")  # metadata only: no generation bump
    obj = (await kubectl("get", "sbc", "h100", "-o", "json")).json()
    assert obj["spec"]["maxGpus"] == 4
    assert obj["spec"]["idle"]["after"] == "2h"
    assert obj["metadata"]["generation"] == 3


async def test_invalid_object_is_rejected_with_the_schema_error(kubectl: Kubectl) -> None:
    bad = {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": "too-big"},
        "spec": {"class": "h100", "gpus": 1000},
    }
    out = await kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.rc != 0
    assert 'The ExperimentSandbox "too-big" is invalid' in out.stderr
    assert "spec.gpus: Invalid value: 1000: must be <= 64" in out.stderr

    bad["spec"] = {"class": "h100", "colour": "blue"}
    out = await kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.rc != 0
    assert 'strict decoding error: unknown field "spec.colour"' in out.stderr


async def test_explain_reads_the_crd_descriptions(kubectl: Kubectl) -> None:
    out = await kubectl("explain", "esb.spec.gpus")
    assert "KIND:       ExperimentSandbox" in out.stdout
    assert "GPUs (or MIG slices" in out.stdout
    core = await kubectl("explain", "pods")
    assert "KIND:       Pod" in core.stdout


STS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: nb}
spec:
  replicas: 1
  serviceName: nb
  selector: {matchLabels: {app: nb}}
  template:
    metadata: {labels: {app: nb}}
    spec:
      containers:
      - name: lab
        image: jupyter
        resources: {limits: {nvidia.com/gpu: "GPUS"}}
  volumeClaimTemplates:
  - metadata: {name: work}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Gi}}
"""


async def test_statefulset_pod_becomes_ready_and_wait_sees_it(
    kubectl: Kubectl, devcluster: DevCluster
) -> None:
    await kubectl("apply", "-f", "-", input=STS.replace("GPUS", "2"))
    await kubectl("wait", "--for=condition=Ready", "pod/nb-0", "--timeout=20s")
    pod = (await kubectl("get", "pod", "nb-0", "-o", "json")).json()
    assert pod["status"]["podIP"].startswith("127.244.")
    assert pod["status"]["containerStatuses"][0]["ready"] is True
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    pvc = (await kubectl("get", "pvc", "work-nb-0", "-o", "json")).json()
    assert pvc["status"]["phase"] == "Bound"
    await kubectl("wait", "--for=jsonpath={.status.readyReplicas}=1", "sts/nb", "--timeout=20s")

    node = pod["spec"]["nodeName"]
    held = devcluster.allocations(node)[pod["metadata"]["uid"]]
    assert held.name == "nb-0"
    assert [(r, len(ids)) for r, ids in held.devices] == [("nvidia.com/gpu", 2)]


async def test_unschedulable_pod_stays_pending_with_the_scheduler_reason(
    kubectl: Kubectl,
) -> None:
    await kubectl("apply", "-f", "-", input=STS.replace("GPUS", "16"))
    await kubectl(
        "wait", "--for=condition=PodScheduled=False", "pod/nb-0", "--timeout=20s"
    )  # fmt: skip
    pod = (await kubectl("get", "pod", "nb-0", "-o", "json")).json()
    cond = pod["status"]["conditions"][0]
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    events = (await kubectl("get", "events", "-o", "json")).json()["items"]
    assert any(
        e["reason"] == "FailedScheduling" and e["message"] == cond["message"] for e in events
    )


async def test_scale_to_zero_frees_gpus_and_keeps_the_claim(
    kubectl: Kubectl, devcluster: DevCluster
) -> None:
    await kubectl("apply", "-f", "-", input=STS.replace("GPUS", "4"))
    await kubectl("wait", "--for=condition=Ready", "pod/nb-0", "--timeout=20s")
    used = sum(len(devcluster.allocations(n)) for n in ("gpu-node-0", "gpu-node-1"))
    assert used == 1
    await kubectl("scale", "sts/nb", "--replicas=0")
    await kubectl("wait", "--for=delete", "pod/nb-0", "--timeout=20s")
    assert all(not devcluster.allocations(n) for n in ("gpu-node-0", "gpu-node-1"))
    assert (await kubectl("get", "pvc", "work-nb-0", check=False)).rc == 0


async def test_delete_cascades_to_dependents_unless_orphaned(
    kubectl: Kubectl, devcluster: DevCluster
) -> None:
    await kubectl("apply", "-f", "-", input=STS.replace("GPUS", "1"))
    await kubectl("wait", "--for=condition=Ready", "pod/nb-0", "--timeout=20s")
    await kubectl("delete", "sts", "nb", "--cascade=orphan")
    pod = (await kubectl("get", "pod", "nb-0", "-o", "json")).json()
    assert "ownerReferences" not in pod["metadata"]
    await kubectl("delete", "pod", "nb-0")

    await kubectl("apply", "-f", "-", input=STS.replace("GPUS", "1"))
    await kubectl("wait", "--for=condition=Ready", "pod/nb-0", "--timeout=20s")
    await kubectl("delete", "sts", "nb")  # background cascade, kubectl's default
    await eventually(
        lambda: devcluster.get("v1", "Pod", "nb-0", "default") is None, message="pod GC"
    )


async def test_namespaces_must_exist(kubectl: Kubectl) -> None:
    doc = json.dumps(configmap("x", "nowhere"))
    out = await kubectl("apply", "-f", "-", input=doc, check=False)
    assert out.rc != 0
    assert 'namespaces "nowhere" not found' in out.stderr
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nowhere"}}
    await kubectl("apply", "-f", "-", input=json.dumps(ns))
    await kubectl("apply", "-f", "-", input=doc)
    # A second apply of a core kind is a strategic merge patch computed by kubectl.
    changed = {**configmap("x", "nowhere"), "data": {"k": "w"}}
    await kubectl("apply", "-f", "-", input=json.dumps(changed))
    got = (await kubectl("get", "cm", "x", "-n", "nowhere", "-o", "json")).json()
    assert got["data"] == {"k": "w"}

    await kubectl("delete", "namespace", "nowhere")  # waits until the content is gone
    assert (await kubectl("get", "cm", "x", "-n", "nowhere", check=False)).rc != 0
    out = await kubectl("delete", "namespace", "default", check=False)
    assert "this namespace may not be deleted" in out.stderr


async def test_get_watch_streams_table_rows(kubectl: Kubectl, kubeconfig: Path) -> None:
    await kubectl("apply", "-f", str(ROOT / "examples/class-h100.yaml"))
    proc = await asyncio.create_subprocess_exec(
        str(kubectl_binary()), "--kubeconfig", str(kubeconfig), "get", "esb", "-n", "team-ml", "-w",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        await kubectl("apply", "-f", str(ROOT / "examples/sandbox.yaml"), user="alice")
        lines: list[str] = []
        while not any("my-notebook" in line for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode())
        assert lines[0].split()[:3] == ["NAME", "PHASE", "CLASS"]
        assert lines[-1].split()[:3] == ["my-notebook", "h100", "1"]
    finally:
        proc.kill()
        await proc.wait()
