"""Accounting benchmark: ledger for N sandboxes over a simulated month, CPU per report, error.

The month is scaled down: `--days` days, each represented by `--hours-per-day` real UTC hours
of usage (defaults: 30 days x 1 hour), so the ledger has sandboxes x days x hours-per-day rows
and the run stays under a minute on two cores. Simulated agents (8 GPUs per node, one sandbox
per GPU, each starting and stopping at a random time) report every `--report-interval` seconds;
agents restart at random (a share of them crash and lose what they had not yet reported) and
the operator restarts at random (it reloads its last checkpoint and re-reads the newest report
of every node, as a relist would). Replayed and out-of-order reports are mixed in.

Printed JSON: CPU per folded report, rows written, checkpoint size, and the metering error
against ground truth (GPU time actually held) and against what the agents published.

    .venv/bin/python benchmarks/bench_accounting.py --size 10000

Prints the harness's result line (bench_result.py); unit cost: accounting CPU (fold, hour close,
checkpoint encode) per sandbox per report round, in microseconds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_result import emit
from sandboxer.api.nodereport import GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.api.ratecard import Price, RateCardSpec
from sandboxer.ledger import checkpoint
from sandboxer.ledger.accounting import Cursors, SandboxRef, fold_report
from sandboxer.ledger.hourly import HourBook

START = datetime(2026, 11, 1, tzinfo=UTC)
CARD = RateCardSpec(prices=[Price(model="H100", effective_from=START, list_price=4.0)])


@dataclass
class Slot:
    pod: str
    gpu: str
    start: float  # seconds since START
    end: float


@dataclass
class Agent:
    node: str
    slots: list[Slot]
    epoch_no: int = 0
    epoch_start: float = 0.0
    sequence: int = 0
    published: dict[str, float] = field(default_factory=dict)  # pod -> last published seconds

    def counters(self, slot: Slot, t: float) -> float:
        return max(0.0, min(t, slot.end) - max(slot.start, self.epoch_start))

    def report(self, t: float, report_interval: float) -> GPUNodeReportStatus:
        self.sequence += 1
        pods = []
        for slot in self.slots:
            # Listed from its start until one report after it ended (so its tail is published).
            if slot.start > t or t > slot.end + report_interval or self.counters(slot, t) <= 0:
                continue
            alloc = self.counters(slot, t)
            self.published[slot.pod] = alloc
            # Every field given: model_construct is slow at filling defaults.
            gpu = PodGPUCounters.model_construct(
                uuid=slot.gpu, allocated_seconds=alloc, busy_seconds=alloc * 0.4,
                energy_joules=alloc * 350.0, peak_memory_bytes=0, utilization_percent=40.0,
                last_active_at=None,
            )  # fmt: skip
            pods.append(PodReport.model_construct(uid=slot.pod, namespace="ml", name=slot.pod,
                                                  gpus=[gpu]))  # fmt: skip
        return GPUNodeReportStatus.model_construct(
            node=self.node, epoch=f"{self.node}-{self.epoch_no}", sequence=self.sequence,
            reported_at=START + timedelta(seconds=t), sample_interval_seconds=10.0,
            report_interval_seconds=report_interval, gpus=[], pods=pods, conditions=[],
        )  # fmt: skip

    def restart(self, t: float) -> float:
        """New epoch from t; returns the published seconds of the epoch that ended."""
        done = sum(self.published.values())
        self.published.clear()
        self.epoch_no += 1
        self.epoch_start = t
        self.sequence = 0
        return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandboxes", "--size", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--hours-per-day", type=float, default=0.5, help="scale: hours per day")
    parser.add_argument("--report-interval", type=float, default=900.0, help="seconds")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--agent-restarts", type=float, default=0.1, help="per node, whole run")
    parser.add_argument("--crash-fraction", type=float, default=0.05)
    parser.add_argument("--operator-restarts", type=int, default=5)
    parser.add_argument("--replay-fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-epoch-commits", action="store_true",
        help="commit only once per pass, not also when an agent epoch changes",
    )  # fmt: skip
    args = parser.parse_args()
    figures = run(args)
    emit(figures, unit_cost=figures["cpu_per_sandbox_round_us"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    span = args.days * args.hours_per_day * 3600
    interval = args.report_interval
    rounds = int(span // interval)
    agents: list[Agent] = []
    sandboxes: dict[str, SandboxRef] = {}
    truth = 0.0
    for i in range(args.sandboxes):
        node = i // args.gpus_per_node
        if node == len(agents):
            agents.append(Agent(f"node-{node:05d}", []))
        start, end = sorted(rng.uniform(0, span) for _ in range(2))
        start, end = (0.0, span) if rng.random() < 0.5 else (start, end)
        pod = f"pod-{i:05d}"
        agents[-1].slots.append(Slot(pod, f"GPU-{i:05d}", start, end))
        sandboxes[pod] = SandboxRef(f"sb-{i:05d}", f"sb-{i:05d}", "ml", f"user-{i % 500}",
                                    "team", "cc", "h100", "H100", None, 1.0, "b")  # fmt: skip
        truth += end - start
    restart_p = args.agent_restarts / max(1, rounds)
    op_restart_rounds = set(rng.sample(range(1, rounds), min(args.operator_restarts, rounds - 1)))

    cursors, book = Cursors(), HourBook()
    saved = checkpoint.encode(cursors, book)
    latest: dict[str, GPUNodeReportStatus] = {}
    previous: dict[str, GPUNodeReportStatus] = {}
    rows = row_hours = 0
    ledger_seconds = 0.0
    published = 0.0
    fold_cpu = close_cpu = encode_cpu = 0.0
    folded = crashes = restarts = commits_on_epoch = 0
    epoch_commits = not args.no_epoch_commits
    max_state = 0
    wall = time.perf_counter()

    def fold(node: str, report: GPUNodeReportStatus) -> None:
        nonlocal fold_cpu, folded, saved, commits_on_epoch
        t0 = time.process_time()
        result = fold_report(cursors, node, report, sandboxes)
        book.add(result.deltas)
        fold_cpu += time.process_time() - t0
        folded += 1
        if result.epoch_changed and epoch_commits:
            # Commit at once: a relist after a crash would no longer show the old epoch's tail.
            saved = commit()
            commits_on_epoch += 1

    def commit() -> bytes:
        nonlocal encode_cpu, max_state
        t0 = time.process_time()
        data = checkpoint.encode(cursors, book)
        encode_cpu += time.process_time() - t0
        max_state = max(max_state, len(data))
        return data

    for r in range(1, rounds + 1):
        t = r * interval
        for agent in agents:
            if rng.random() < restart_p:
                at = t - rng.uniform(0, interval)
                if rng.random() < args.crash_fraction:
                    crashes += 1  # usage since the last report is lost with the agent
                else:
                    fold(agent.node, agent.report(at, interval))  # graceful: final report
                published += agent.restart(at)
                restarts += 1
            report = agent.report(t, interval)
            previous[agent.node] = latest.get(agent.node, report)
            latest[agent.node] = report
            fold(agent.node, report)
            if rng.random() < args.replay_fraction:
                fold(agent.node, previous[agent.node])  # duplicate / out of order
        t0 = time.process_time()
        closed = book.close(START + timedelta(seconds=t), cursors.node_progress(), CARD)
        close_cpu += time.process_time() - t0
        if r in op_restart_rounds:
            # Crash before this pass committed: reload and re-read the newest report per node.
            cursors, book = checkpoint.decode(saved)
            for agent in agents:
                fold(agent.node, latest[agent.node])
            closed = book.close(START + timedelta(seconds=t), cursors.node_progress(), CARD)
        for hour in closed:
            rows += len(hour.rows)
            row_hours += 1
            ledger_seconds += sum(row.allocated_gpu_hours for row in hour.rows) * 3600
        saved = commit()
    for agent in agents:
        published += sum(agent.published.values())
    final = book.close(START + timedelta(seconds=span + 3600), {}, CARD)
    rows += sum(len(h.rows) for h in final)
    ledger_seconds += sum(r.allocated_gpu_hours for h in final for r in h.rows) * 3600
    wall = time.perf_counter() - wall

    nodes = len(agents)
    per_report_us = fold_cpu / folded * 1e6
    month_reports_per_s = nodes / 30.0  # real agents report every 30 s
    return {
        "sandboxes": args.sandboxes,
        "nodes": nodes,
        "simulated_hours": span / 3600,
        "report_interval_s": interval,
        "reports_folded": folded,
        "ledger_rows": rows,
        "cpu_per_report_us": round(per_report_us, 1),
        "cpu_per_report_per_sandbox_us": round(per_report_us / args.gpus_per_node, 2),
        "cpu_per_sandbox_round_us": round(
            (fold_cpu + close_cpu + encode_cpu) / (args.sandboxes * rounds) * 1e6, 3
        ),
        "close_cpu_per_pass_ms": round(close_cpu / rounds * 1e3, 3),
        "checkpoint_bytes_max": max_state,
        "checkpoint_encode_cpu_ms": round(encode_cpu / (rounds + commits_on_epoch) * 1e3, 2),
        "agent_restarts": restarts,
        "agent_crashes": crashes,
        "operator_restarts": len(op_restart_rounds),
        "commits_on_epoch_change": commits_on_epoch,
        "error_vs_truth_pct": round(abs(ledger_seconds - truth) / truth * 100, 5),
        "error_vs_published_pct": round(abs(ledger_seconds - published) / published * 100, 9),
        "target_error_pct": 0.1,
        "core_share_at_30s_reports_pct": round(month_reports_per_s * per_report_us / 1e4, 3),
        "wall_s": round(wall, 1),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    main()
