"""Benchmark: N sandboxes applied at once -> all Ready; wall time and API requests per sandbox.

Runs the real operator (in its own thread, as in production a process of its own) against
kmock's KubernetesEmulator over HTTP, until the embedded API server replaces it. A simulated
kubelet turns every StatefulSet at one replica into a Ready pod. Writes
benchmarks/results/sandbox_apply-<N>.json.

On kmock the numbers are not the operator's: kmock sends no resourceVersion, so kopf cannot
tell its own patches' echoes from new changes and handles each creation about three times,
and kmock holds one lock while it pushes every watch event, which serialises the run. Rerun
on the embedded API server for the DESIGN.md targets.

    .venv/bin/python benchmarks/sandbox_apply.py --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import yaml

from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.runner import run_operator

ROOT = Path(__file__).resolve().parent.parent
NS = "bench"
ESB = f"/apis/sandboxer.io/v1alpha1/namespaces/{NS}/experimentsandboxes"
# The fewest writes one sandbox needs: five children created and one status write.
MINIMUM_WRITES = 6


def declare(emulator: kmock.KubernetesEmulator) -> None:
    emulator.resources.load_bundled()
    emulator.resources["sandboxer.io/v1alpha1/experimentsandboxes"] = kmock.ResourceInfo(
        kind="ExperimentSandbox", namespaced=True, subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch"},
    )  # fmt: skip
    emulator.resources["sandboxer.io/v1alpha1/sandboxclasses"] = kmock.ResourceInfo(
        kind="SandboxClass", namespaced=False, verbs={"get", "list", "watch", "create"}
    )


async def kubelet(session: aiohttp.ClientSession, base: str, stop: asyncio.Event) -> None:
    """StatefulSet controller + scheduler + kubelet in one: a Ready pod per running StatefulSet."""
    started: set[str] = set()
    while not stop.is_set():
        async with session.get(f"{base}/apis/apps/v1/namespaces/{NS}/statefulsets") as resp:
            items = (await resp.json())["items"]
        for sts in items:
            name = sts["metadata"]["name"]
            if name in started or sts["spec"].get("replicas") != 1:
                continue
            started.add(name)
            template = sts["spec"]["template"]
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{name}-0", "namespace": NS, **template["metadata"]},
                   "spec": {**template["spec"], "nodeName": "gpu-node-1"},
                   "status": {"phase": "Running", "conditions": [
                       {"type": "PodScheduled", "status": "True"},
                       {"type": "Ready", "status": "True"}]}}  # fmt: skip
            await session.post(f"{base}/api/v1/namespaces/{NS}/pods", json=pod)
        await asyncio.sleep(0.1)


async def ready_count(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + ESB) as resp:
        items = (await resp.json())["items"]
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True"
            for c in (i.get("status") or {}).get("conditions", []))
        for i in items
    )  # fmt: skip


async def bench(count: int) -> dict[str, Any]:
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
        declare(emulator)
        base = str(emulator.url).rstrip("/")
        stop_op, ready_op = threading.Event(), threading.Event()
        config = OperatorConfig(server=base)
        thread = threading.Thread(
            target=lambda: asyncio.run(run_operator(config, stop_flag=stop_op, ready_flag=ready_op))
        )
        async with aiohttp.ClientSession() as session:
            cls = yaml.safe_load((ROOT / "examples" / "class-h100.yaml").read_text())
            await session.post(f"{base}/apis/sandboxer.io/v1alpha1/sandboxclasses", json=cls)
            thread.start()
            await asyncio.to_thread(ready_op.wait, 30)
            before = len(list(emulator))
            stop_kubelet = asyncio.Event()
            kubelet_task = asyncio.create_task(kubelet(session, base, stop_kubelet))
            t0 = time.monotonic()

            async def apply(i: int) -> None:
                body = {"apiVersion": "sandboxer.io/v1alpha1", "kind": "ExperimentSandbox",
                        "metadata": {"name": f"nb-{i}", "namespace": NS, "uid": f"uid-{i}"},
                        "spec": {"class": "h100", "gpus": 1, "owner": "alice"}}  # fmt: skip
                await session.post(base + ESB, json=body)

            await asyncio.gather(*(apply(i) for i in range(count)))
            async with asyncio.timeout(600):
                while await ready_count(session, base) < count:  # noqa: ASYNC110 - polls the API
                    await asyncio.sleep(0.2)
            wall = time.monotonic() - t0
            stop_kubelet.set()
            await kubelet_task
            stop_op.set()
            await asyncio.to_thread(thread.join, 30)

        requests = list(emulator)[before:]
        ours = [r for r in requests if r.headers.get("User-Agent", "").startswith(("kopf/",
                "sandboxer-operator"))]  # fmt: skip
        writes = [r for r in ours if r.method in ("POST", "PATCH", "PUT", "DELETE")]
        return {
            "sandboxes": count,
            "wall_seconds": round(wall, 2),
            "operator_requests_per_sandbox": round(len(ours) / count, 2),
            "operator_writes_per_sandbox": round(len(writes) / count, 2),
            "minimum_writes_per_sandbox": MINIMUM_WRITES,
            "writes_vs_minimum": round(len(writes) / count / MINIMUM_WRITES, 2),
            "api": "kmock KubernetesEmulator (until the embedded API server lands)",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(bench(args.count))
    out = ROOT / "benchmarks" / "results" / f"sandbox_apply-{args.count}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
