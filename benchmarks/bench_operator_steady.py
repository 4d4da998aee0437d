"""Operator steady state: the cluster-wide loop over N sandboxes (DESIGN.md: 10,000 sandboxes,
RSS <= 300 MB, <= 5 % of one core).

Feeds the real loop code (`SnapshotBuilder` over kopf-shaped index data, then
`AccountingLoop.run_pass` with a directory ledger) a synthetic cluster: N running one-GPU
sandboxes on N/8 nodes whose agents report every 30 s, passes every 10 s, for `--minutes` of
simulated time. The operator's other work (kopf watch streams, handlers) idles in steady state
and is not simulated. CPU share = CPU seconds per simulated second; the first pass (history
load) is reported separately. Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

import kopf

import sandboxer.controller.runner  # noqa: F401 - load what the operator loads, for RSS
from sandboxer.controller.loop_runner import (
    index_namespace,
    index_pod_uid,
    index_spec,
    index_status,
)
from sandboxer.controller.sandboxes import index_class, index_sandbox
from sandboxer.ledger.store import DirectoryLedgerStore
from sandboxer.loop.accounting_loop import AccountingLoop
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import SnapshotBuilder

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
INTERVAL = 10.0
REPORT_EVERY = 30.0


class Index(dict[Any, list[Any]]):
    """kopf's Index shape: key -> a collection of values."""

    def put(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        """Index one object through the operator's own index function, as kopf does."""
        for key, value in fn(**kwargs).items():
            self[key] = [value]


def cluster(n: int) -> tuple[dict[str, Index], dict[tuple[str, str], dict[str, Any]]]:
    """The indexes the operator would hold, and the API objects behind the sandbox index."""
    idx = {name: Index() for name in (
        "index_sandbox", "index_pod_uid", "index_class", "index_budget", "index_ratecard",
        "index_report", "index_namespace",
    )}  # fmt: skip
    idx["index_class"].put(
        index_class, name="h100",
        spec={"image": "nb:1", "gpu": {"model": "H100"},
              "idle": {"after": "1h", "warnBefore": "15m"}},
    )  # fmt: skip
    idx["index_ratecard"].put(
        index_spec, name="default",
        spec={"currency": "USD",
              "prices": [{"model": "H100", "effectiveFrom": "2026-01-01T00:00:00Z",
                          "listPrice": 4.0, "contractedPrice": 3.0}]},
    )  # fmt: skip
    teams = max(1, n // 100)
    for t in range(teams):
        idx["index_namespace"].put(
            index_namespace, name=f"team-{t}", labels={"sandboxer.io/team": f"team-{t}"}
        )
        idx["index_budget"].put(
            index_spec, name=f"team-{t}",
            spec={"subjects": [{"kind": "Group", "name": f"team-{t}"}], "scope": "Shared",
                  "allowance": {"gpuHours": 1e6}},
        )  # fmt: skip
    bodies: dict[tuple[str, str], dict[str, Any]] = {}
    for i in range(n):
        ns, name = f"team-{i % teams}", f"nb-{i}"
        bodies[(ns, name)] = body = {
            "apiVersion": "sandboxer.io/v1alpha1", "kind": "ExperimentSandbox",
            "metadata": {
                "uid": f"sb-{i}", "name": name, "namespace": ns, "resourceVersion": str(i + 1),
                "generation": 1, "creationTimestamp": T0.isoformat(),
                # What admission stamps, and kopf's own bookkeeping the index leaves out.
                "annotations": {"sandboxer.io/owner-groups": f"system:authenticated,{ns}",
                                "sandboxer.io/admission": "webhook",
                                "kopf.zalando.org/last-handled-configuration": "{}"},
            },
            "spec": {"class": "h100", "gpus": 1, "owner": f"user-{i % 500}"},
            "status": {"node": f"node-{i // 8}", "startedAt": T0.isoformat(),
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "NotebookReady",
                                       "lastTransitionTime": T0.isoformat()}]},
        }  # fmt: skip
        idx["index_sandbox"].put(index_sandbox, body=kopf.Body(body), namespace=ns, name=name)
        idx["index_pod_uid"].put(
            index_pod_uid, uid=f"pod-{i}", namespace=ns, labels={"sandboxer.io/sandbox": name}
        )
    return idx, bodies


def report(node: int, n: int, seq: int, at: datetime, elapsed: float) -> dict[str, Any]:
    pods = []
    for i in range(node * 8, min(n, node * 8 + 8)):
        gpu = {
            "uuid": f"GPU-{i}",
            "allocatedSeconds": elapsed,
            "busySeconds": elapsed * 0.5,
            "utilizationPercent": 50.0,
        }
        ns = f"team-{i % max(1, n // 100)}"
        pods.append({"uid": f"pod-{i}", "namespace": ns, "name": f"nb-{i}-0", "gpus": [gpu]})
    gpus = [{"uuid": f"GPU-{i}", "utilizationPercent": 50.0, "utilizationSignal": "DutyCycle"}
            for i in range(node * 8, min(n, node * 8 + 8))]  # fmt: skip
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"node": f"node-{node}", "epoch": "e1", "sequence": seq, "reportedAt": stamp,
            "gpus": gpus, "pods": pods}  # fmt: skip


def apply_writes(
    idx: dict[str, Index], bodies: dict[tuple[str, str], dict[str, Any]], result: Any
) -> int:
    """What the API server and the watch do with the loop's patches: a new resourceVersion,
    and the operator's index function runs on the changed object."""
    global _version
    for write in result.sandbox_writes:
        key = (write.namespace, write.name)
        body = bodies[key]
        status = {**body["status"], **write.status}
        body["status"] = {k: v for k, v in status.items() if v is not None}
        if write.suspend:
            body["spec"] = {**body["spec"], "suspend": True}
        _version += 1
        body["metadata"]["resourceVersion"] = str(_version)
        idx["index_sandbox"].put(index_sandbox, body=kopf.Body(body), namespace=key[0], name=key[1])
    return len(result.sandbox_writes)


_version = 10**9  # the API server's counter, past the initial objects'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000, help="running sandboxes")
    parser.add_argument("--minutes", type=float, default=3.0, help="simulated minutes")
    args = parser.parse_args()
    n = args.size
    nodes = (n + 7) // 8
    idx, bodies = cluster(n)
    with tempfile.TemporaryDirectory() as tmp:
        engine = AccountingLoop(
            DirectoryLedgerStore(tmp),
            LoopSettings(interval=INTERVAL, unknown_pod_grace=timedelta(0)),
        )
        builder = SnapshotBuilder()
        passes = int(args.minutes * 60 / INTERVAL)
        cpu_passes: list[float] = []
        writes = 0
        first_cpu = 0.0
        for p in range(passes + 1):
            now = T0 + timedelta(seconds=p * INTERVAL)
            # A third of the agents report in each pass (30 s report, 10 s pass).
            for node in range(nodes):
                if p == 0 or node % 3 == p % 3:
                    elapsed = p * INTERVAL
                    idx["index_report"].put(
                        index_status, name=f"node-{node}", status=report(node, n, p, now, elapsed)
                    )
            start = time.process_time()
            result = engine.run_pass(builder.build(idx, now))
            spent = time.process_time() - start
            if p == 0:
                first_cpu = spent
            else:
                cpu_passes.append(spent)
                writes += len(result.sandbox_writes) + len(result.budget_writes)
            apply_writes(idx, bodies, result)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu_per_pass = sum(cpu_passes) / len(cpu_passes)
    share = sum(cpu_passes) / (len(cpu_passes) * INTERVAL)
    print(json.dumps({
        "metrics": {
            "sandboxes": n,
            "cpu_s_per_pass": round(cpu_per_pass, 4),
            "cpu_share_of_one_core_pct": round(share * 100, 3),
            "first_pass_cpu_s": round(first_cpu, 3),
            "rss_mb": round(rss_mb, 1),
            "api_writes_per_sandbox_minute": round(writes / n / args.minutes, 4),
        },
        "unit_cost": cpu_per_pass * 1000 / n,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
