"""Benchmark of the embedded API server: create N custom objects over HTTPS, list and watch them.

    .venv/bin/python benchmarks/bench_embedded_api.py --size 10000

Prints the harness's result line (bench_result.py): creation rate, list latency percentiles
(full list, label-selected list, single get), watch figures (an informer's initial watch of all
N objects; create-to-event latency on an open watch), memory per stored object (RSS delta and
tracemalloc of the store), and the time for N/10 one-GPU StatefulSets to become Ready through
the simulated scheduler. Unit cost: full-list p50 latency per stored object, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from bench_result import emit  # noqa: E402
from sandboxer.devcluster.cluster import DevCluster  # noqa: E402

ESBS = "/apis/sandboxer.io/v1alpha1/namespaces/default/experimentsandboxes"


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sandbox(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": f"sb-{i:06d}", "labels": {"team": f"team-{i % 10}"}},
        "spec": {"class": "h100", "gpus": 1},
    }


def statefulset(i: int) -> dict[str, Any]:
    labels = {"app": f"nb-{i}"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": f"nb-{i:05d}"},
        "spec": {
            "replicas": 1,
            "serviceName": f"nb-{i}",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "lab",
                            "image": "jupyter",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ]
                },
            },
        },
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def timed_get(session: Any, url: str, repeat: int, **params: str) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        async with session.get(url, params=params) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        samples.append(time.perf_counter() - start)
    return samples


async def initial_watch(session: Any, size: int) -> float:
    """Seconds until a watch from resourceVersion 0 has delivered every object as ADDED."""
    start = time.perf_counter()
    seen = 0
    async with session.get(ESBS, params={"watch": "true", "resourceVersion": "0"}) as stream:
        while seen < size:
            line = await asyncio.wait_for(stream.content.readline(), 60)
            if not line:
                raise SystemExit(f"watch ended after {seen} of {size} objects")
            seen += json.loads(line)["type"] == "ADDED"
    return time.perf_counter() - start


async def watch_latency(session: Any, size: int, repeat: int) -> list[float]:
    """Create an object, then read the open watch until its ADDED event: one sample each."""
    async with session.get(ESBS, params={"limit": "1"}) as resp:
        rv = (await resp.json())["metadata"]["resourceVersion"]
    samples = []
    async with session.get(ESBS, params={"watch": "true", "resourceVersion": rv}) as stream:
        for k in range(repeat):
            obj = sandbox(size + k)
            start = time.perf_counter()
            async with session.post(ESBS, json=obj) as resp:
                await resp.read()
                assert resp.status == 201, resp.status
            while True:
                line = await asyncio.wait_for(stream.content.readline(), 10)
                event = json.loads(line)
                if event["object"]["metadata"]["name"] == obj["metadata"]["name"]:
                    break
            samples.append(time.perf_counter() - start)
    return samples


async def run(size: int, repeat: int, concurrency: int) -> dict[str, Any]:
    out: dict[str, Any] = {"size": size}
    async with DevCluster() as cluster, cluster.session() as session:
        cluster.load_crds()
        gc.collect()
        rss0 = rss_bytes()
        sem = asyncio.Semaphore(concurrency)

        async def create(i: int) -> None:
            async with sem, session.post(ESBS, json=sandbox(i)) as resp:
                await resp.read()
                assert resp.status == 201, resp.status

        start = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(size)))
        elapsed = time.perf_counter() - start
        gc.collect()
        out["create_seconds"] = round(elapsed, 2)
        out["creates_per_second"] = round(size / elapsed, 1)
        out["rss_bytes_per_object"] = round((rss_bytes() - rss0) / size)

        out["list_all"] = percentiles(await timed_get(session, ESBS, repeat))
        out["list_label_selected"] = percentiles(
            await timed_get(session, ESBS, repeat, labelSelector="team=team-3")
        )
        out["get_one"] = percentiles(await timed_get(session, f"{ESBS}/sb-000042", repeat * 5))
        out["watch_initial_all_s"] = round(await initial_watch(session, size), 3)
        out["watch_event"] = percentiles(await watch_latency(session, size, repeat))

    # Heap retained per stored object, measured on the store alone (no HTTP buffers).
    async with DevCluster() as cluster:
        cluster.load_crds()
        rt = cluster.resource("sandboxer.io/v1alpha1", "ExperimentSandbox")
        sample = max(size // 10, 100)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(sample):
            await cluster.apiserver.create(rt, "default", sandbox(i))
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out["heap_bytes_per_object"] = round((after - before) / sample)

    # Scheduling throughput: N/10 one-GPU StatefulSets on enough 8-GPU nodes.
    count = max(size // 10, 10)
    async with DevCluster() as cluster:
        for n in range((count + 7) // 8):
            cluster.add_gpu_node(f"gpu-node-{n}", gpus=8)
        sts = cluster.resource("apps/v1", "StatefulSet")
        start = time.perf_counter()
        for i in range(count):
            await cluster.apiserver.create(sts, "default", statefulset(i))
        while True:
            ready = sum(
                1 for s in cluster.objects(sts.key) if (s.get("status") or {}).get("readyReplicas")
            )
            if ready == count:
                break
            await asyncio.sleep(0.01)
        out["statefulsets"] = count
        out["statefulsets_ready_seconds"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="custom objects to create")
    parser.add_argument("--repeat", type=int, default=20, help="samples per latency figure")
    parser.add_argument("--concurrency", type=int, default=32, help="parallel create requests")
    args = parser.parse_args()
    if args.size < 1:
        parser.error("--size must be at least 1")
    figures = asyncio.run(run(args.size, args.repeat, args.concurrency))
    emit(figures, unit_cost=round(figures["list_all"]["p50_ms"] * 1000 / args.size, 4))


if __name__ == "__main__":
    main()
