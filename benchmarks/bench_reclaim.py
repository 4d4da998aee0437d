"""Idle reclaim benchmark: latency after last activity and loop CPU per pass, simulated clock.

N sandboxes (8 per node, some on MIG slices) stop being active at random times; some never stop.
Each node's agent reports every `--report-interval` seconds at its own phase; one cluster-wide
loop pass runs every report interval, folds the new reports into each sandbox's activity and
decides Keep / Warn / Reclaim. Latency = reclaim time - the sandbox's true last activity; the
target is latency <= after + one report interval. Nothing sleeps: the clock is simulated.

    .venv/bin/python benchmarks/bench_reclaim.py --size 1000

Prints the harness's result line (bench_result.py); unit cost: loop CPU per sandbox per pass.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_result import emit
from sandboxer.api.nodereport import GPUDevice, GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.reclaim.idle import Activity, activity_from_report, observe
from sandboxer.reclaim.policy import Reclaim, Warn, decide, effective_policy

START = datetime(2026, 11, 24, 9, tzinfo=UTC)


@dataclass
class Sim:
    pod: str
    node: int
    gpu: str
    mig: bool
    active_until: float | None  # seconds after START; None: busy throughout
    activity: Activity | None = None
    warned_at: float | None = None
    reclaimed_at: float | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandboxes", "--size", type=int, default=1000)
    parser.add_argument("--after", default="10m", help="idle window (Go duration)")
    parser.add_argument("--warn-before", default="2m")
    parser.add_argument("--report-interval", type=float, default=30.0)
    parser.add_argument("--busy-fraction", type=float, default=0.2)
    parser.add_argument("--mig-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    figures = run(args)
    emit(figures, unit_cost=figures["cpu_per_sandbox_per_pass_us"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    interval = args.report_interval
    cls = SandboxClassSpec.model_validate(
        {"image": "jupyter", "gpu": {"model": "H100"},
         "idle": {"after": args.after, "warnBefore": args.warn_before}}
    )  # fmt: skip
    policy = effective_policy("bench", cls, ExperimentSandboxSpec.model_validate({"class": "b"}))
    after = policy.after.total_seconds()
    horizon = after * 3 + 600
    sims = [
        Sim(
            pod=f"pod-{i:05d}",
            node=i // 8,
            gpu=f"{'MIG' if mig else 'GPU'}-{i:05d}",
            mig=mig,
            active_until=None if rng.random() < args.busy_fraction else rng.uniform(0, after),
        )
        for i in range(args.sandboxes)
        for mig in [rng.random() < args.mig_fraction]
    ]
    nodes = (args.sandboxes + 7) // 8
    phase = [rng.uniform(0, interval) for _ in range(nodes)]
    by_node: dict[int, list[Sim]] = {}
    for sim in sims:
        by_node.setdefault(sim.node, []).append(sim)
    last_report: dict[int, float] = {}
    pass_cpu: list[float] = []
    t = 0.0
    while t < horizon:
        t += interval
        # Reports published since the previous pass (each node at its own phase).
        seq = len(pass_cpu) + 1
        reports = {n: _report(by_node[n], t - interval + phase[n], seq) for n in by_node}
        t0 = time.process_time()
        now = START + timedelta(seconds=t)
        for n, report in reports.items():
            if last_report.get(n) == report.sequence:
                continue
            last_report[n] = report.sequence
            assert report.reported_at is not None
            for sim in by_node[n]:
                if sim.reclaimed_at is not None:
                    continue
                gpus = activity_from_report(report, sim.pod)
                sim.activity = observe(sim.activity, gpus, report.reported_at, policy)
        for sim in sims:
            if sim.reclaimed_at is not None:
                continue
            last = sim.activity.last_active_at if sim.activity else None
            decision = decide(policy, now=now, started_at=START, last_active_at=last)
            if isinstance(decision, Warn) and sim.warned_at is None:
                sim.warned_at = t
            elif isinstance(decision, Reclaim):
                sim.reclaimed_at = t
        pass_cpu.append(time.process_time() - t0)

    idle = [s for s in sims if s.active_until is not None]
    latencies = [s.reclaimed_at - s.active_until for s in idle if s.reclaimed_at is not None]
    bound = after + interval
    return {
        "sandboxes": args.sandboxes,
        "after_s": after,
        "report_interval_s": interval,
        "target_latency_s": bound,
        "idle_sandboxes": len(idle),
        "reclaimed": len(latencies),
        "busy_reclaimed": sum(1 for s in sims if s.active_until is None and s.reclaimed_at),
        "latency_s": {
            "min": round(min(latencies), 1),
            "p50": round(statistics.median(latencies), 1),
            "max": round(max(latencies), 1),
        },
        "within_target": bool(latencies) and max(latencies) <= bound,
        "all_warned_first": all(
            s.warned_at is not None and s.warned_at < s.reclaimed_at
            for s in idle
            if s.reclaimed_at is not None
        ),
        "passes": len(pass_cpu),
        "cpu_per_pass_ms": round(statistics.mean(pass_cpu) * 1e3, 3),
        "cpu_per_pass_max_ms": round(max(pass_cpu) * 1e3, 3),
        "cpu_per_sandbox_per_pass_us": round(statistics.mean(pass_cpu) / len(sims) * 1e6, 2),
        "python": sys.version.split()[0],
    }


def _report(sims: list[Sim], at: float, sequence: int) -> GPUNodeReportStatus:
    """One node's report at `at`: utilization 60% while active, 0% after; MIG via processes."""
    node = sims[0].node
    devices, pods = [], []
    for sim in sims:
        busy = sim.active_until is None or at <= sim.active_until
        util = None if sim.mig else (60.0 if busy else 0.0)
        devices.append(GPUDevice.model_construct(
            uuid=sim.gpu, utilization_percent=util, processes=1 if busy else 0,
            utilization_signal="ProcessPresence" if sim.mig else "DutyCycle",
        ))  # fmt: skip
        counters = PodGPUCounters.model_construct(uuid=sim.gpu, utilization_percent=util)
        pods.append(PodReport.model_construct(uid=sim.pod, namespace="ml", name=sim.pod,
                                              gpus=[counters]))  # fmt: skip
    return GPUNodeReportStatus.model_construct(
        node=f"node-{node}", epoch="e", sequence=sequence,
        reported_at=START + timedelta(seconds=at), gpus=devices, pods=pods,
    )  # fmt: skip


if __name__ == "__main__":
    main()
