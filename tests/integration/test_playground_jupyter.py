"""Jupyter activity in idle reclaim, on the playground with a real Jupyter Server per notebook.

`Playground(jupyter=True)`: the simulated kubelet runs Jupyter Server for each running notebook
pod, at the pod's IP, with the token of its Secret; the operator's loop asks each `/api/status`
with the token it derives itself (it reads no Secret). alice has three sandboxes in a class with
`useJupyterActivity` and a short window: two hold a GPU at 0 % (a CUDA context, no work), one
has no GPU. The test plays alice's user in "typing": it calls that notebook's API the way
JupyterLab does. The quiet GPU notebook and the GPU-less one are reclaimed after their window;
"typing" is kept while she works, and reclaimed once she stops.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandboxer.devcluster.playground import Playground
from tests.integration.conftest import ROOT, Kubectl, kubectl_runner
from tests.integration.manifests import busy_sandbox, sandbox_class

pytestmark = pytest.mark.slow  # a playground with real Jupyter Servers

TEAM = "team-ml"  # alice's context's namespace
AFTER, WARN = 12, 4  # seconds of the class's idle window and warning
CLASS = sandbox_class(
    "jq", idle={"after": f"{AFTER}s", "warnBefore": f"{WARN}s", "useJupyterActivity": True}
)


def sandbox(name: str, gpus: int) -> str:
    return busy_sandbox(name, 0, "jq", gpus)  # a GPU at 0 %: a CUDA context, no work


@pytest.fixture
async def playground(tmp_path: Path) -> AsyncIterator[Playground]:
    async with Playground(
        nodes=1, gpus_per_node=4, sample_interval=0.2, report_interval=0.5,
        ledger_dir=tmp_path / "ledger", loop_interval=0.5,
        kubeconfig=tmp_path / "playground.kubeconfig", examples=ROOT / "examples", jupyter=True,
    ) as pg:  # fmt: skip
        yield pg


async def get(kubectl: Kubectl, *what: str, user: str = "alice") -> Any:
    return (await kubectl("get", *what, "-o", "json", user=user)).json()


async def notebook(kubectl: Kubectl, name: str) -> tuple[str, str]:
    """The notebook's address (its pod's IP) and token, read as admin: alice's role grants
    sandboxes only, no pods or Secrets."""
    pod = await get(kubectl, "pod", f"{name}-0", "-n", TEAM, user="admin")
    secret = await get(kubectl, "secret", f"{name}-token", "-n", TEAM, user="admin")
    token = base64.b64decode(secret["data"]["token"]).decode()
    return f"http://{pod['status']['podIP']}:8888", token


async def answering(http: aiohttp.ClientSession, url: str, token: str) -> None:
    async with asyncio.timeout(60):
        while True:
            try:
                async with http.get(
                    f"{url}/api/status", headers={"Authorization": f"token {token}"}
                ) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def reclaimed_message(kubectl: Kubectl, name: str) -> str:
    listed = await get(
        kubectl,
        "events",
        "-n",
        TEAM,
        "--field-selector",
        f"involvedObject.name={name}",
        user="admin",
    )
    found = [e["message"] for e in listed["items"] if e["reason"] == "IdleReclaimed"]
    assert found, [e["reason"] for e in listed["items"]]
    return str(found[-1])


async def test_a_user_working_in_jupyter_keeps_a_quiet_gpu_notebook(
    playground: Playground, tmp_path: Path
) -> None:
    kubectl = kubectl_runner(playground.kubeconfig_path, tmp_path / "kube-cache")
    await kubectl("apply", "-f", "-", input=CLASS)
    for name, gpus in (("typing", 1), ("quiet", 1), ("nogpu", 0)):
        await kubectl("apply", "-f", "-", user="alice", input=sandbox(name, gpus))
    await kubectl("wait", "--for=condition=Ready", "esb/typing", "esb/quiet", "esb/nogpu",
                  "--timeout=60s", user="alice")  # fmt: skip
    url, token = await notebook(kubectl, "typing")
    auth = {"Authorization": f"token {token}"}
    async with aiohttp.ClientSession() as http:
        await answering(http, url, token)

        async def work() -> None:
            while True:  # alice browses her files every second, as JupyterLab would
                async with http.get(f"{url}/api/contents", headers=auth) as resp:
                    assert resp.status == 200
                await asyncio.sleep(1)

        typing = asyncio.create_task(work())
        try:
            await kubectl("wait", "--for=jsonpath={.status.suspendedReason}=Idle", "esb/quiet",
                          "esb/nogpu", f"--timeout={AFTER + 40}s", user="alice")  # fmt: skip
            # A whole window later she is still at it, and her notebook still runs.
            await kubectl("wait", "--for=jsonpath={.status.phase}=Ready", "esb/typing",
                          "--timeout=5s", user="alice")  # fmt: skip
            kept = await get(kubectl, "esb", "typing")
            assert kept["spec"].get("suspend") is not True
            assert typing.done() is False
        finally:
            typing.cancel()
    # The reclaim says what decided: the quiet GPU and the quiet Jupyter; Jupyter alone for the
    # sandbox without a GPU.
    quiet, nogpu = (
        await reclaimed_message(kubectl, "quiet"),
        await reclaimed_message(kubectl, "nogpu"),
    )
    assert "every GPU at or below 5%" in quiet and "Jupyter last active" in quiet, quiet
    assert "Jupyter last active" in nogpu and "GPU at" not in nogpu, nogpu

    # She stops: after a window of quiet in Jupyter too, "typing" goes the same way.
    await kubectl("wait", "--for=jsonpath={.status.suspendedReason}=Idle", "esb/typing",
                  f"--timeout={AFTER + 40}s", user="alice")  # fmt: skip
    # Suspended notebooks have no Jupyter Server running any more.
    await kubectl("wait", "--for=delete", "pod/typing-0", "pod/quiet-0", "pod/nogpu-0",
                  "-n", TEAM, "--timeout=30s", user="admin")  # fmt: skip
    assert playground.cluster.notebooks is not None
    assert playground.cluster.notebooks.addresses == {}
