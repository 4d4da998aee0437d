"""Benchmark: time-to-notebook in the playground (apply -> Ready per sandbox), N applied at once.

    .venv/bin/python benchmarks/bench_time_to_notebook.py --size 100

The whole playground runs: embedded API, the real operator (webhooks included) and a metering
agent per simulated node (1 s samples, 2 s reports), with the simulated kubelet taking 0.5 s to
start a notebook's containers, as a real one takes a while. Sandboxes are applied in-process as
alice through admission (N kubectl processes would measure process start-up on a 2-core box);
a store listener records when each first turns Ready. Prints the harness JSON as its last line.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from playground_runs import (  # noqa: E402
    GPUS_PER_NODE,
    ReadyClock,
    apply_all,
    nodes_for,
    percentile,
    run_cli,
)
from sandboxer.devcluster.playground import Playground  # noqa: E402


async def bench(size: int) -> dict[str, Any]:
    # No ledger: the accounting loop and budget gate would cap alice at her example budget's
    # 8 concurrent GPUs; time-to-notebook is about provisioning.
    async with Playground(
        nodes=nodes_for(size),
        gpus_per_node=GPUS_PER_NODE,
        sample_interval=1.0,
        report_interval=2.0,
        ledger_dir=None,
        examples=ROOT / "examples",
    ) as pg:
        clock = ReadyClock(pg.cluster, size)
        t0 = time.perf_counter()
        await apply_all(pg.cluster, clock, size)
        async with asyncio.timeout(max(120.0, size * 0.5)):
            await clock.all_ready.wait()
        wall = time.perf_counter() - t0
        container_start = pg.cluster.scheduler.container_start
    seconds, admit = clock.seconds_to_ready(), clock.seconds_to_admit()
    return {
        "sandboxes": size,
        "nodes": nodes_for(size),
        "ready_p50_s": round(percentile(seconds, 50), 3),
        "ready_p99_s": round(percentile(seconds, 99), 3),
        "max_seconds": round(seconds[-1], 3),
        # How much of it is admission (both webhooks answered, object stored).
        "admission_p50_seconds": round(percentile(admit, 50), 3),
        "admission_p99_seconds": round(percentile(admit, 99), 3),
        "wall_seconds_to_all_ready": round(wall, 3),
        "simulated_container_start_seconds": container_start,
    }


def main() -> None:
    run_cli(bench, "wall_seconds_to_all_ready", __doc__)


if __name__ == "__main__":
    main()
