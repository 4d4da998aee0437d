"""What the operator's kopf index functions keep is what the loop decides on (issue 15, point 1).

The objects go in as the API server sends them, through the same index functions the operator
registers, then `SnapshotBuilder` and `AccountingLoop`: no SandboxView is built by hand, so a
field the indexes drop (the owner's groups, before) shows up here as a Group pool that counts
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf

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
from sandboxer.sandbox_rules import BudgetRequest

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
STAMP = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
NS, NAME, POD = "team-ml", "carols", "pod-uid-1"
SANDBOX = {
    "apiVersion": "sandboxer.io/v1alpha1",
    "kind": "ExperimentSandbox",
    "metadata": {
        "name": NAME, "namespace": NS, "uid": "sb-uid-1", "generation": 1,
        "resourceVersion": "41", "creationTimestamp": STAMP,
        "annotations": {
            "sandboxer.io/owner-groups": "system:authenticated,team-ml",
            "sandboxer.io/admission": "webhook",
            "kopf.zalando.org/last-handled-configuration": '{"spec": {}}',
        },
    },
    "spec": {"class": "h100", "gpus": 2, "owner": "carol"},
    "status": {
        "node": "node-a", "startedAt": STAMP,
        "conditions": [{"type": "Ready", "status": "True", "reason": "NotebookReady",
                        "lastTransitionTime": STAMP}],
    },
}  # fmt: skip
POOL = {
    "subjects": [{"kind": "Group", "name": "team-ml"}],
    "scope": "Shared",
    "allowance": {"gpuHours": 100},
    "maxConcurrentGpus": 2,
    "team": "ml-platform",
}


def report(seq: int, elapsed: float) -> dict[str, Any]:
    gpus = [{"uuid": f"GPU-{i}", "allocatedSeconds": elapsed, "busySeconds": elapsed,
             "utilizationPercent": 90.0} for i in range(2)]  # fmt: skip
    at = (T0 + timedelta(seconds=elapsed)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "node": "node-a", "epoch": "e1", "sequence": seq, "reportedAt": at,
        "gpus": [{"uuid": g["uuid"], "utilizationPercent": 90.0} for g in gpus],
        "pods": [{"uid": POD, "namespace": NS, "name": f"{NAME}-0", "gpus": gpus}],
    }  # fmt: skip


def indexed(fn: Callable[..., Any], **kwargs: Any) -> dict[Any, list[Any]]:
    """kopf's index shape (key -> values) from one object through the operator's function."""
    return {key: [value] for key, value in fn(**kwargs).items()}


def indexes(report_status: Mapping[str, Any]) -> dict[str, Any]:
    body = kopf.Body(SANDBOX)
    return {
        "index_sandbox": indexed(index_sandbox, body=body, namespace=NS, name=NAME),
        "index_class": indexed(
            index_class,
            name="h100",
            spec={"image": "nb:1", "gpu": {"model": "H100"}, "idle": {"after": "1h"}},
        ),
        "index_budget": indexed(index_spec, name="ml-pool", spec=POOL),
        "index_ratecard": indexed(
            index_spec,
            name="default",
            spec={
                "currency": "USD",
                "prices": [
                    {
                        "model": "H100",
                        "listPrice": 4.0,
                        "contractedPrice": 3.0,
                        "effectiveFrom": "2026-01-01T00:00:00Z",
                    }
                ],
            },
        ),
        "index_namespace": indexed(index_namespace, name=NS, labels={"sandboxer.io/team": "ml"}),
        "index_pod_uid": indexed(
            index_pod_uid, uid=POD, namespace=NS, labels={"sandboxer.io/sandbox": NAME}
        ),
        "index_report": indexed(index_status, name="node-a", status=report_status),
    }


def test_the_owners_groups_reach_the_group_pool_through_the_indexes(tmp_path: Path) -> None:
    [kept] = indexed(index_sandbox, body=kopf.Body(SANDBOX), namespace=NS, name=NAME)[(NS, NAME)]
    # kopf's own annotations (a second copy of the spec) stay out of the index.
    assert set(kept["metadata"]["annotations"]) == {
        "sandboxer.io/owner-groups",
        "sandboxer.io/admission",
    }

    loop = AccountingLoop(
        DirectoryLedgerStore(tmp_path),
        LoopSettings(usage_refresh=timedelta(0), budget_refresh=timedelta(0)),
    )
    builder = SnapshotBuilder()
    snap = builder.build(indexes(report(1, 30.0)), T0 + timedelta(seconds=31))
    view = snap.sandboxes[(NS, NAME)]
    assert set(view.owner_groups) == {"system:authenticated", "team-ml"}
    assert view.created_at == T0

    result = loop.run_pass(snap)
    [pool] = [w.status for w in result.budget_writes if w.name == "ml-pool"]
    [shared] = pool["subjects"]
    assert (shared["kind"], shared["runningGpus"]) == ("Shared", 2)

    # Another member of team-ml, at admission: the pool is full.
    decision = loop.admit(
        BudgetRequest(
            operation="CREATE", owner="alice", namespace=NS, name="alices", class_name="h100",
            gpus=1, billing_weight=1.0, dry_run=False, groups=("team-ml",),
        ),
        snap,
    )  # fmt: skip
    assert not decision.allowed
    assert "ml-pool" in decision.message and "maxConcurrentGpus" in decision.message

    # The same objects again (unchanged resourceVersion): the parsed view is reused.
    again = builder.build(indexes(report(2, 60.0)), T0 + timedelta(seconds=61))
    assert again.sandboxes[(NS, NAME)] is view
