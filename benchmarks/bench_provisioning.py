"""Benchmark: N sandboxes applied at once -> all Ready, on the embedded API with the real operator.

    .venv/bin/python benchmarks/bench_provisioning.py --size 1000

The operator runs in-process in its own thread (as `sandboxer dev` runs it), with its admission
webhooks registered; no agents. Sandboxes are applied in-process as alice, through admission.
Only the operator talks HTTP to the API here, so the API's request counters are its requests.

The minimum a sandbox needs is 6 writes: create StatefulSet, Service, PVC, Secret and
NetworkPolicy, and one status write that reports it Ready. Reads (get/list/watch) are counted
separately. Prints the harness JSON as its last line.
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
    operator_requests,
    run_cli,
)
from sandboxer.devcluster.playground import Playground  # noqa: E402

MINIMUM_WRITES = 6  # 5 child creates + 1 status write
WRITES = ("create", "update", "patch", "delete")


async def bench(size: int) -> dict[str, Any]:
    # No ledger: the accounting loop and budget gate are not part of provisioning (alice's
    # example budget would also cap her at 8 concurrent GPUs).
    async with Playground(
        nodes=nodes_for(size),
        gpus_per_node=GPUS_PER_NODE,
        agents=False,
        ledger_dir=None,
        examples=ROOT / "examples",
    ) as pg:
        clock = ReadyClock(pg.cluster, size)
        before = operator_requests(pg.cluster)
        t0 = time.perf_counter()
        await apply_all(pg.cluster, clock, size)
        applied = time.perf_counter() - t0
        async with asyncio.timeout(max(120.0, size * 0.5)):
            await clock.all_ready.wait()
        wall = time.perf_counter() - t0
        after = operator_requests(pg.cluster)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    writes = sum(n for (verb, _), n in delta.items() if verb in WRITES)
    reads = sum(n for (verb, _), n in delta.items() if verb not in WRITES)
    by_verb: dict[str, int] = {}
    for (verb, plural), n in sorted(delta.items()):
        if n:
            by_verb[f"{verb} {plural}"] = n
    return {
        "sandboxes": size,
        "ready_all_s": round(wall, 3),
        "requests_per_sandbox_over_min": round((writes + reads) / size / MINIMUM_WRITES, 3),
        "apply_seconds": round(applied, 3),
        "writes_per_sandbox": round(writes / size, 3),
        "reads_per_sandbox": round(reads / size, 3),
        "requests_per_sandbox": round((writes + reads) / size, 3),
        "minimum_writes_per_sandbox": MINIMUM_WRITES,
        "writes_vs_minimum": round(writes / size / MINIMUM_WRITES, 3),
        "requests_by_verb": by_verb,
    }


def main() -> None:
    run_cli(bench, "ready_all_s", __doc__)


if __name__ == "__main__":
    main()
