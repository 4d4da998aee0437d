"""A real Jupyter Server for each running notebook pod of the playground (`--jupyter`).

What the kubelet would run from the pod's container: Jupyter Server (from PyPI, no GPU needed)
listening on the pod's IP (a loopback address, devcluster/scheduler.py) and port 8888, with the
token of the sandbox's Secret from the container's `JUPYTER_TOKEN` reference. Its workspace is a
folder per sandbox that outlives the pod, as the sandbox's volume does, so a file written before
a suspend is there after the resume. The process stops when the pod is deleted.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from sandboxer.devcluster.apiserver import ApiServer
from sandboxer.devcluster.store import ResKey
from sandboxer.manifests.inputs import NOTEBOOK_PORT
from sandboxer.manifests.labels import SANDBOX_LABEL

SECRETS: ResKey = ("", "v1", "secrets")


def _token_ref(pod: dict[str, Any]) -> tuple[str, str] | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if env.get("name") == "JUPYTER_TOKEN" and ref:
                return str(ref["name"]), str(ref["key"])
    return None


class NotebookServers:
    """Started and stopped by the simulated kubelet's hooks; `close` stops them all."""

    def __init__(self, apiserver: ApiServer, root: Path | None = None) -> None:
        self.apiserver = apiserver
        self._scratch = tempfile.mkdtemp(prefix="sandboxer-notebooks-") if root is None else None
        self.root = root or Path(self._scratch or ".")
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._reap: list[subprocess.Popen[bytes]] = []  # stopped, to be waited for
        self.addresses: dict[str, str] = {}  # pod uid -> http://ip:port

    def workspace(self, namespace: str, sandbox: str) -> Path:
        return self.root / "workspaces" / namespace / sandbox

    def start(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid, namespace = meta["uid"], meta.get("namespace", "default")
        sandbox = (meta.get("labels") or {}).get(SANDBOX_LABEL)
        ip = (pod.get("status") or {}).get("podIP")
        ref = _token_ref(pod)
        if uid in self._procs or not sandbox or not ip or ref is None:
            return
        secret = self.apiserver.store.get(SECRETS, namespace, ref[0])
        if secret is None or ref[1] not in (secret.get("data") or {}):
            return  # as a kubelet would: the container cannot start without its Secret
        token = base64.b64decode(secret["data"][ref[1]]).decode()
        home = self.workspace(namespace, sandbox)
        home.mkdir(parents=True, exist_ok=True)
        state = self.root / "state" / uid
        state.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "JUPYTER_TOKEN": token,
            "JUPYTER_CONFIG_DIR": str(state / "config"),
            "JUPYTER_DATA_DIR": str(state / "data"),
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "HOME": str(home),
        }
        log = (state / "jupyter.log").open("wb")
        self._procs[uid] = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server",
                f"--ServerApp.ip={ip}", f"--ServerApp.port={NOTEBOOK_PORT}",
                "--ServerApp.port_retries=0", "--allow-root", "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={home}",
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        self.addresses[uid] = f"http://{ip}:{NOTEBOOK_PORT}"

    async def answering(self, pod: dict[str, Any], within: float = 180.0) -> bool:
        """The container's readiness probe (`GET /api`, 200 without a token), tried until it
        passes, the process exits or `within` seconds pass."""
        uid = pod["metadata"]["uid"]
        deadline = asyncio.get_running_loop().time() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while asyncio.get_running_loop().time() < deadline:
                proc, url = self._procs.get(uid), self.addresses.get(uid)
                if proc is None or url is None or proc.poll() is not None:
                    return False
                try:
                    async with http.get(f"{url}/api") as resp:
                        if resp.status == 200:
                            return True
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)  # the kubelet's probe period, shortened
        return False

    def stop(self, uid: str) -> None:
        proc = self._procs.pop(uid, None)
        self.addresses.pop(uid, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
        if proc is not None:
            self._reap.append(proc)

    def close(self) -> None:
        for uid in list(self._procs):
            self.stop(uid)
        for proc in self._reap:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
