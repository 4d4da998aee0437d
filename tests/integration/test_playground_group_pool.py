"""A team's Shared pool, used by two members, from their seats (issue 15, point 1).

alice and carol are both in group `team-ml`; the pool names the group, not them. What they run
counts against it at admission and in the running loop, it suspends both at exhaustion, and the
ledger charges the pool's team and cost centre. Before, the running operator never saw the
owners' groups, so none of this happened outside unit tests.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandboxer import API_VERSION
from sandboxer.devcluster.playground import Playground
from sandboxer.ledger import checkpoint
from sandboxer.ledger.store import open_store
from sandboxer.loop.snapshot import merged_rate_card
from tests.integration.conftest import ROOT, Kubectl, kubectl_runner
from tests.integration.manifests import compute_budget

pytestmark = pytest.mark.slow  # a whole playground

NS = "team-ml"
POOL = compute_budget(
    "ml-pool",
    subjects=[{"kind": "Group", "name": "team-ml"}],
    scope="Shared",
    allowance={"gpuHours": 0.01},  # 36 GPU-seconds: gone in seconds with 3 GPUs busy
    maxConcurrentGpus=3,
    minRuntime="0s",  # a tiny pool that still admits short sessions
    onExhausted="Suspend",
    team="ml-platform",
    costCenter="CC-4242",
)


def sandbox(name: str, gpus: int) -> str:
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "ExperimentSandbox",
            "metadata": {"name": name, "annotations": {"sim.sandboxer.io/gpu-utilization": "90"}},
            "spec": {"class": "h100", "gpus": gpus},
        }
    )


async def get(kubectl: Kubectl, *what: str, user: str = "admin") -> Any:
    return (await kubectl("get", *what, "-o", "json", user=user)).json()


async def test_a_group_pool_counts_and_stops_both_members(tmp_path: Path) -> None:
    async with Playground(
        nodes=2, gpus_per_node=4, sample_interval=0.2, report_interval=0.5,
        ledger_dir=tmp_path / "ledger", kubeconfig=tmp_path / "kubeconfig",
        examples=ROOT / "examples",
        # Short enough that the tiny pool runs out within the test.
        operator_overrides={"loop_interval": 0.5, "usage_refresh": 1.0, "budget_refresh": 1.0,
                            "checkpoint_interval": 0.0},
    ) as pg:  # fmt: skip
        kubectl = kubectl_runner(pg.kubeconfig_path, tmp_path / "kube-cache")
        await kubectl("apply", "-f", "-", input=json.dumps(POOL))
        await kubectl("create", "-n", NS, "-f", "-", input=sandbox("alices", 2), user="alice")
        await kubectl("create", "-n", NS, "-f", "-", input=sandbox("carols", 1), user="carol")
        for name in ("alices", "carols"):
            await kubectl("wait", "--for=condition=Ready", f"esb/{name}", "-n", NS, "--timeout=60s")
        # The pool sees both members' GPUs: carol cannot add one past its three.
        await kubectl(
            "wait", "--for=jsonpath={.status.subjects[0].runningGpus}=3",
            "computebudget/ml-pool", "--timeout=30s",
        )  # fmt: skip
        more = await kubectl(
            "create", "-n", NS, "-f", "-", input=sandbox("carols-more", 1), user="carol",
            check=False,
        )  # fmt: skip
        assert more.rc != 0
        assert "ml-pool" in more.stderr and "maxConcurrentGpus" in more.stderr, more.stderr

        # Both run out together, as one pool, and are suspended with the reason.
        for name in ("alices", "carols"):
            await kubectl(
                "wait", "--for=jsonpath={.status.suspendedReason}=BudgetExhausted",
                f"esb/{name}", "-n", NS, "--timeout=60s",
            )  # fmt: skip
        pool = await get(kubectl, "computebudget", "ml-pool")
        [shared] = pool["status"]["subjects"]
        assert shared["kind"] == "Shared"
        assert shared["usedGpuHours"] >= POOL["spec"]["allowance"]["gpuHours"]
        assert shared["exhaustions"] >= 1

        cards = {c["metadata"]["name"]: c["spec"] for c in pg.cluster.list(API_VERSION, "RateCard")}
    # The playground is gone: close its open hour, as the demo does at exit.
    now = datetime.now(UTC)
    store = open_store(str(tmp_path / "ledger"))
    checkpoint.flush(store, merged_rate_card(cards), now)
    # carol is in no other budget: her hours are the pool's, charged to its team.
    rows = list(store.read_rows(now - timedelta(hours=2), now + timedelta(hours=1)))
    carols = [r for r in rows if r.sandbox == "carols"]
    assert carols, f"no ledger rows for carol's sandbox in {len(rows)} rows"
    assert {(r.owner, r.budget, r.team, r.cost_center) for r in carols} == {
        ("carol", "ml-pool", "ml-platform", "CC-4242")
    }
    assert {r.owner for r in rows} >= {"alice", "carol"}


async def test_five_parallel_creates_against_a_cap_of_two_admit_two(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    cap = compute_budget("two-at-once", ["alice"], allowance={"gpuHours": 100}, maxConcurrentGpus=2)
    await pg_kubectl("apply", "-f", "-", input=json.dumps(cap))
    # Inside one loop pass: nothing of these five is running yet when each is asked.
    results = await asyncio.gather(
        *(
            pg_kubectl(
                "create",
                "-n",
                NS,
                "-f",
                "-",
                input=sandbox(f"burst-{i}", 1),
                user="alice",
                check=False,
            )
            for i in range(5)
        )
    )
    admitted = [r for r in results if r.rc == 0]
    refused = [r.stderr for r in results if r.rc != 0]
    assert len(admitted) == 2, [r.stderr for r in results]
    for message in refused:
        assert "two-at-once" in message and "maxConcurrentGpus" in message, message
        assert "2 of the 2 GPUs" in message, message
    stored = await get(pg_kubectl, "esb", "-n", NS)
    assert len(stored["items"]) == 2
