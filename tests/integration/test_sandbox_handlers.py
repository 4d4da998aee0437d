"""The kopf handlers against the embedded API server over real HTTPS.

The embedded API assigns uids and generations, and its StatefulSet controller, scheduler and
simulated kubelet make and run the pods; the test writes through the same HTTP API as kubectl.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.operatorthread import OPERATOR_USER
from sandboxer.manifests.labels import OWNER_GROUPS_ANNOTATION as OWNER_GROUPS
from tests.integration.operator_api import (
    ESB,
    NS,
    PVCS,
    STS,
    Api,
    eventually,
    operator_config,
    running_operator,
    team_cluster,
)


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    async with team_cluster() as cluster:
        yield cluster


@pytest.fixture
async def api(cluster: DevCluster) -> AsyncIterator[Api]:
    async with cluster.session() as session:
        yield Api(session)


def operator(cluster: DevCluster) -> contextlib.AbstractAsyncContextManager[None]:
    return running_operator(operator_config(cluster, webhooks=False, class_retry_delay=1.0))


def sandbox(name: str = "nb", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        # Stored as the webhooks would leave it (no webhooks run here): owner and groups.
        "metadata": {"name": name, "namespace": NS, "annotations": {OWNER_GROUPS: ""}},
        "spec": {"class": "h100", "gpus": 2, "owner": "alice", **spec},
    }


async def condition(api: Api, name: str, type_: str) -> dict[str, Any] | None:
    obj = await api.get(f"{ESB}/namespaces/{NS}/experimentsandboxes/{name}")
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return cond  # type: ignore[no-any-return]
    return None


async def test_apply_creates_children_with_gpus_and_security(api: Api, cluster: DevCluster) -> None:
    async with operator(cluster):
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) == 201
        sts = await eventually(lambda: api.get(f"{STS}/nb"))
        for path in (
            f"{PVCS}/nb-workspace",
            f"/api/v1/namespaces/{NS}/secrets/nb-token",
            f"/api/v1/namespaces/{NS}/services/nb",
            f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/nb",
        ):
            assert await eventually(lambda p=path: api.get(p)), path
        container = sts["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert sts["spec"]["replicas"] == 1
        assert sts["metadata"]["ownerReferences"][0]["kind"] == "ExperimentSandbox"
        assert sts["metadata"]["labels"]["sandboxer.io/owner"] == "alice"
        # Children go by owner references: no finalizer holds the sandbox.
        obj = await api.get(f"{ESB}/namespaces/{NS}/experimentsandboxes/nb")
        assert not obj["metadata"].get("finalizers")

        # The embedded API's StatefulSet controller and scheduler run the pod.
        ready = await eventually(
            lambda: _when(condition(api, "nb", "Ready"), lambda c: c["status"] == "True")
        )
        assert ready["reason"] == "NotebookReady"
        obj = await api.get(f"{ESB}/namespaces/{NS}/experimentsandboxes/nb")
        assert obj["status"]["phase"] == "Ready"
        pod = await api.get(f"/api/v1/namespaces/{NS}/pods/nb-0")
        assert obj["status"]["node"] == pod["spec"]["nodeName"]
        assert obj["status"]["url"] == f"http://nb.{NS}.svc:8888/"


async def _when(value: Awaitable[Any], test: Callable[[Any], bool]) -> Any:
    got = await value
    return got if got is not None and test(got) else None


async def test_suspend_scales_to_zero_keeping_the_volume_and_resume(
    api: Api, cluster: DevCluster
) -> None:
    path = f"{ESB}/namespaces/{NS}/experimentsandboxes/nb"
    async with operator(cluster):
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) == 201
        await eventually(lambda: api.get(f"{STS}/nb"))
        pvc_before = await eventually(lambda: api.get(f"{PVCS}/nb-workspace"))

        assert await api.patch(path, {"spec": {"suspend": True}}) == 200
        await eventually(lambda: _when(api.get(f"{STS}/nb"), lambda s: s["spec"]["replicas"] == 0))
        suspended = await eventually(
            lambda: _when(condition(api, "nb", "Suspended"), lambda c: c["status"] == "True")
        )
        assert suspended["reason"] == "User"
        assert await api.get(f"{PVCS}/nb-workspace") == pvc_before

        assert await api.patch(path, {"spec": {"suspend": False}}) == 200
        await eventually(lambda: _when(api.get(f"{STS}/nb"), lambda s: s["spec"]["replicas"] == 1))
        resumed = await eventually(
            lambda: _when(condition(api, "nb", "Suspended"), lambda c: c["status"] == "False")
        )
        assert resumed["observedGeneration"] == 3


async def test_restart_mid_provisioning_converges_without_duplicates(
    api: Api, cluster: DevCluster
) -> None:
    # A previous operator process created the Secret and a stale StatefulSet, then died.
    assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox(gpus=1)) == 201
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "nb-token", "namespace": NS},
        "data": {"token": "b2xk"},
    }
    assert await api.post(f"/api/v1/namespaces/{NS}/secrets", secret) == 201
    stale = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "nb", "namespace": NS},
        "spec": {"replicas": 0, "template": {"spec": {}}},
    }
    assert await api.post(STS, stale) == 201

    for _ in range(2):  # a second restart must change nothing either
        async with operator(cluster):
            sts = await eventually(
                lambda: _when(api.get(f"{STS}/nb"), lambda s: s["spec"]["replicas"] == 1)
            )
            await eventually(lambda: api.get(f"{PVCS}/nb-workspace"))
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # The token Secret was there: kept as it was, never regenerated.
    kept = await api.get(f"/api/v1/namespaces/{NS}/secrets/nb-token")
    assert kept["data"]["token"] == "b2xk"
    # One of each child, though the operator did try to create them again.
    for path in (
        STS,
        PVCS,
        f"/api/v1/namespaces/{NS}/secrets",
        f"/api/v1/namespaces/{NS}/services",
    ):
        assert len((await api.get(path))["items"]) == 1, path
    # The stale one, then the first operator's own create, answered 409 and adopted instead.
    assert cluster.request_count("create", "statefulsets") >= 1 + 1


async def test_missing_class_is_reported_not_hot_looped(api: Api, cluster: DevCluster) -> None:
    async with operator(cluster):
        body = sandbox(**{"class": "a100"})
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", body) == 201
        ready = await eventually(lambda: condition(api, "nb", "Ready"))
        assert ready["reason"] == "ClassNotFound"
        assert "a100" in ready["message"]
    assert await api.get(f"{STS}/nb") is None


async def test_gpu_change_rolls_the_pod_template(api: Api, cluster: DevCluster) -> None:
    path = f"{ESB}/namespaces/{NS}/experimentsandboxes/nb"
    async with operator(cluster):
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) == 201
        before = await eventually(lambda: api.get(f"{STS}/nb"))
        hash_before = before["spec"]["template"]["metadata"]["annotations"][
            "sandboxer.io/spec-hash"
        ]
        assert await api.patch(path, {"spec": {"gpus": 4}}) == 200

        def limits(s: dict[str, Any]) -> Any:
            return s["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]

        after = await eventually(
            lambda: _when(api.get(f"{STS}/nb"), lambda s: limits(s)["nvidia.com/gpu"] == "4")
        )
        annotations = after["spec"]["template"]["metadata"]["annotations"]
        assert annotations["sandboxer.io/spec-hash"] != hash_before
        assert limits(after)["memory"] == "256Gi"  # class default per GPU follows


async def test_sandboxer_operator_command_provisions(
    api: Api, cluster: DevCluster, tmp_path: Path
) -> None:
    """`sandboxer operator` as its own process, reading a kubeconfig, stopped by SIGTERM."""
    operator_config(cluster, webhooks=False)  # adds the operator's service-account user
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", user=OPERATOR_USER)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    code = "from sandboxer.cli import main; main()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "operator", "--all-namespaces", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) == 201
        sts = await eventually(lambda: api.get(f"{STS}/nb"), within=30)
        assert sts["spec"]["replicas"] == 1
        # The operator process (kopf's watches and our own client) called as its service account.
        callers = {(sent.user, sent.user_agent) for sent in cluster.http.log}
        assert (OPERATOR_USER, "sandboxer-operator") in callers
        operator_agents = [c for c in callers if c[1].startswith(("kopf/", "sandboxer-operator"))]
        assert {user for user, _ in operator_agents} == {OPERATOR_USER}
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
