"""Agent tick cost: `--size` compute processes spread over 8 GPUs on the simulated backend.

Measures CPU time per steady-state tick (time.process_time: sample, attribution, cgroup lookup,
counters) and per report build, and the process's peak RSS with every module the real agent
imports loaded (kubernetes client, gRPC, aiohttp, prometheus). The kubelet answers from memory
here, so the gRPC round trip (measured by the integration tests) is not in the tick figure.
Prints the harness's result line (bench_result.py). Targets (DESIGN.md): <= 5 ms CPU per tick,
RSS <= 80 MB with 8 GPUs x 64 processes, i.e. at --size 64 (the harness's 16x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

import sandboxer.metering.main  # noqa: F401 - load what the real agent loads, for RSS
from bench_result import emit
from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.metering.agent import Agent, AgentConfig
from sandboxer.metering.cgroups import CgroupResolver
from sandboxer.metering.podresources.model import PodAllocation, pods_from_map
from sandboxer.metering.probe import ProcessSample
from sandboxer.metering.simulated import SimulatedNVML, make_gpus


class MemoryKubelet:
    def __init__(self, pods: list[PodAllocation]) -> None:
        self.pods = pods

    async def list(self) -> list[PodAllocation]:
        return self.pods


class NullPublisher:
    writes = 0

    async def publish(self, status: GPUNodeReportStatus) -> None:
        self.writes += 1


async def bench(gpus_n: int, procs_n: int, ticks: int) -> dict[str, Any]:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    sim = SimulatedNVML(make_gpus(gpus_n, node="bench"), clock=lambda: now[0].timestamp())
    with tempfile.TemporaryDirectory() as proc:
        uids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(gpus_n)]
        for pid in range(1000, 1000 + procs_n):
            gpu = pid % gpus_n
            (Path(proc) / str(pid)).mkdir()
            (Path(proc) / str(pid) / "cgroup").write_text(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                f"{uids[gpu].replace('-', '_')}.slice/cri-containerd-{pid}.scope\n"
            )
        for i, g in enumerate(sim.gpus):
            sim.set_utilization(g.uuid, 10.0 * (i % 10))
            pids = range(1000 + i, 1000 + procs_n, gpus_n)
            sim.set_processes(g.uuid, [ProcessSample(pid, 2**30) for pid in pids])
        allocations = {
            ("team", f"nb-{i}-0"): {"nvidia.com/gpu": [g.uuid]} for i, g in enumerate(sim.gpus)
        }
        kubelet = MemoryKubelet(pods_from_map(allocations))
        agent = Agent(
            AgentConfig(node="bench"),
            backend=sim,
            kubelet=kubelet,
            publisher=NullPublisher(),
            cgroups=CgroupResolver(proc),
            clock=lambda: now[0],
        )
        await agent.tick()  # warm-up: cgroup files read, pairs created
        cpu: list[float] = []
        for _ in range(ticks):
            now[0] += timedelta(seconds=10)
            started = time.process_time()
            await agent.tick()
            cpu.append((time.process_time() - started) * 1000)
        started = time.process_time()
        status = agent.status()
        report_ms = (time.process_time() - started) * 1000
        wire = json.dumps(status.dump())
    pairs = agent.book.pairs()
    if len(pairs) != gpus_n or not all(p.allocated_seconds > 0 for p in pairs):
        raise SystemExit(f"benchmark is broken: expected {gpus_n} counted pairs, got {pairs}")
    return {
        "gpus": gpus_n,
        "processes": procs_n,
        "ticks": ticks,
        "cpu_ms_per_tick_mean": round(statistics.fmean(cpu), 4),
        "cpu_ms_per_tick_p50": round(statistics.median(cpu), 4),
        "cpu_ms_per_tick_max": round(max(cpu), 4),
        "cpu_ms_per_tick_per_gpu": round(statistics.fmean(cpu) / gpus_n, 5),
        "cpu_us_per_tick_per_process": round(statistics.fmean(cpu) * 1000 / procs_n, 3),
        "report_build_cpu_ms": round(report_ms, 4),
        "report_bytes": len(wire),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", "--processes", dest="processes", type=int, default=64,
                        help="GPU compute processes on the node")  # fmt: skip
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    if min(args.processes, args.gpus, args.ticks) < 1:
        parser.error("--size, --gpus and --ticks must be at least 1")
    figures = asyncio.run(bench(args.gpus, args.processes, args.ticks))
    emit(figures, unit_cost=float(figures["cpu_us_per_tick_per_process"]))


if __name__ == "__main__":
    main()
