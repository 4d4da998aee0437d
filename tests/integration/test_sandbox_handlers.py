"""The kopf handlers against kmock's KubernetesEmulator over real HTTP.

The test plays the parts of the API server that kmock leaves out (uid, the StatefulSet
controller, the scheduler and kubelet) by writing through the same HTTP API the operator uses.
The integrator adds the same scenarios through kubectl against the embedded API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest
import yaml

from sandboxer.controller.config import OperatorConfig
from tests.integration.emulator import (
    CREATED,
    ESB,
    NS,
    PODS,
    PVCS,
    STS,
    Api,
    declare,
    eventually,
    run_operator_thread,
)


def operator(url: str) -> contextlib.AbstractAsyncContextManager[None]:
    return run_operator_thread(OperatorConfig(server=url, class_retry_delay=1.0))


@pytest.fixture
async def api(kmock: kmock.KubernetesEmulator, repo_root: Any) -> AsyncIterator[Api]:
    declare(kmock)
    async with aiohttp.ClientSession() as session:
        client = Api(str(kmock.url), session)
        cls = yaml.safe_load((repo_root / "examples" / "class-h100.yaml").read_text())
        assert await client.post(f"{ESB}/sandboxclasses", cls) in CREATED
        yield client


def sandbox(name: str = "nb", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        # The emulator assigns no uid or generation; the real API server does.
        "metadata": {"name": name, "namespace": NS, "uid": str(uuid.uuid4()), "generation": 1},
        "spec": {"class": "h100", "gpus": 2, "owner": "alice", **spec},
    }


async def run_pod(api: Api, name: str, *, ready: bool) -> None:
    """Play the StatefulSet controller + scheduler + kubelet: one pod from the template."""
    sts = await api.get(f"{STS}/{name}")
    template = sts["spec"]["template"]
    conditions = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True" if ready else "False"},
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-0", "namespace": NS, **template["metadata"]},
        "spec": {**template["spec"], "nodeName": "gpu-node-1"},
        "status": {"phase": "Running", "conditions": conditions},
    }
    assert await api.post(PODS, pod) in CREATED


async def condition(api: Api, name: str, type_: str) -> dict[str, Any] | None:
    obj = await api.get(f"{ESB}/namespaces/{NS}/experimentsandboxes/{name}")
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return cond  # type: ignore[no-any-return]
    return None


async def test_apply_creates_children_with_gpus_and_security(api: Api, kmock: Any) -> None:
    async with operator(str(kmock.url)):
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) in CREATED
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

        await run_pod(api, "nb", ready=True)
        ready = await eventually(lambda: condition(api, "nb", "Ready"))
        ready = await eventually(
            lambda: _when(condition(api, "nb", "Ready"), lambda c: c["status"] == "True")
        )
        assert ready["reason"] == "NotebookReady"
        obj = await api.get(f"{ESB}/namespaces/{NS}/experimentsandboxes/nb")
        assert obj["status"]["phase"] == "Ready"
        assert obj["status"]["node"] == "gpu-node-1"
        assert obj["status"]["url"] == f"http://nb.{NS}.svc:8888/"


async def _when(value: Awaitable[Any], test: Callable[[Any], bool]) -> Any:
    got = await value
    return got if got is not None and test(got) else None


async def test_suspend_scales_to_zero_keeping_the_volume_and_resume(api: Api, kmock: Any) -> None:
    path = f"{ESB}/namespaces/{NS}/experimentsandboxes/nb"
    async with operator(str(kmock.url)):
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) in CREATED
        await eventually(lambda: api.get(f"{STS}/nb"))
        pvc_before = await eventually(lambda: api.get(f"{PVCS}/nb-workspace"))

        assert (
            await api.patch(path, {"spec": {"suspend": True}, "metadata": {"generation": 2}}) == 200
        )
        await eventually(lambda: _when(api.get(f"{STS}/nb"), lambda s: s["spec"]["replicas"] == 0))
        suspended = await eventually(
            lambda: _when(condition(api, "nb", "Suspended"), lambda c: c["status"] == "True")
        )
        assert suspended["reason"] == "User"
        assert await api.get(f"{PVCS}/nb-workspace") == pvc_before

        assert (
            await api.patch(path, {"spec": {"suspend": False}, "metadata": {"generation": 3}})
            == 200
        )
        await eventually(lambda: _when(api.get(f"{STS}/nb"), lambda s: s["spec"]["replicas"] == 1))
        resumed = await eventually(
            lambda: _when(condition(api, "nb", "Suspended"), lambda c: c["status"] == "False")
        )
        assert resumed["observedGeneration"] == 3


async def test_restart_mid_provisioning_converges_without_duplicates(api: Api, kmock: Any) -> None:
    # A previous operator process created the Secret and a stale StatefulSet, then died.
    assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox(gpus=1)) in CREATED
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "nb-token", "namespace": NS},
        "data": {"token": "b2xk"},
    }
    assert await api.post(f"/api/v1/namespaces/{NS}/secrets", secret) in CREATED
    stale = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "nb", "namespace": NS},
        "spec": {"replicas": 0, "template": {"spec": {}}},
    }
    assert await api.post(STS, stale) in CREATED

    for _ in range(2):  # a second restart must change nothing either
        async with operator(str(kmock.url)):
            sts = await eventually(
                lambda: _when(api.get(f"{STS}/nb"), lambda s: s["spec"]["replicas"] == 1)
            )
            await eventually(lambda: api.get(f"{PVCS}/nb-workspace"))
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # The token Secret was there: kept as it was, never regenerated.
    kept = await api.get(f"/api/v1/namespaces/{NS}/secrets/nb-token")
    assert kept["data"]["token"] == "b2xk"
    # One of each child, and the operator did try to create them again (answered 409).
    for path in (
        STS,
        PVCS,
        f"/api/v1/namespaces/{NS}/secrets",
        f"/api/v1/namespaces/{NS}/services",
    ):
        assert len((await api.get(path))["items"]) == 1, path
    creates = [r for r in kmock if r.method == "POST" and r.url.path == STS]
    assert len(creates) >= 1 + 2  # the stale one, then at least one 409 per operator start


async def test_missing_class_is_reported_not_hot_looped(api: Api, kmock: Any) -> None:
    async with operator(str(kmock.url)):
        body = sandbox(**{"class": "a100"})
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", body) in CREATED
        ready = await eventually(lambda: condition(api, "nb", "Ready"))
        assert ready["reason"] == "ClassNotFound"
        assert "a100" in ready["message"]
    assert await api.get(f"{STS}/nb") is None


async def test_gpu_change_rolls_the_pod_template(api: Api, kmock: Any) -> None:
    path = f"{ESB}/namespaces/{NS}/experimentsandboxes/nb"
    async with operator(str(kmock.url)):
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) in CREATED
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


async def test_sandboxer_operator_command_provisions(api: Api, kmock: Any, tmp_path: Path) -> None:
    """`sandboxer operator` as its own process, reading a kubeconfig, stopped by SIGTERM."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "op"}}],
            "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
            "users": [{"name": "op", "user": {"token": "operator-token"}}],
        })
    )  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    code = "from sandboxer.cli import main; main()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "operator", "--all-namespaces", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox()) in CREATED
        sts = await eventually(lambda: api.get(f"{STS}/nb"), within=30)
        assert sts["spec"]["replicas"] == 1
        ours = [r for r in kmock if r.headers.get("User-Agent") == "sandboxer-operator"]
        assert ours
        assert {r.headers.get("Authorization") for r in ours} == {"Bearer operator-token"}
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
