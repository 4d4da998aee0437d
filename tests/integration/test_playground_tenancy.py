"""A shared team namespace, from each member's seat: only the owner changes a sandbox (issue 17.1).

RBAC lets every member of team-ml edit every sandbox in it; the owner's budget pays for what
runs, so the validating webhook refuses everyone else (admins and the operator aside).
"""

from __future__ import annotations

import json

from tests.integration.conftest import Kubectl

NS = "team-ml"
SANDBOX = json.dumps(
    {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": "alices"},
        "spec": {"class": "h100", "gpus": 1},
    }
)


def merge(patch: object) -> tuple[str, ...]:
    return ("patch", "esb", "alices", "-n", NS, "--type", "merge", "-p", json.dumps(patch))


async def test_a_teammate_cannot_change_or_delete_your_sandbox(pg_kubectl: Kubectl) -> None:
    kubectl = pg_kubectl
    await kubectl("create", "-n", NS, "-f", "-", input=SANDBOX, user="alice")
    for attempt in (
        merge({"spec": {"suspend": True}}),
        merge({"spec": {"gpus": 2}}),
        ("delete", "esb", "alices", "-n", NS, "--wait=false"),
    ):
        refused = await kubectl(*attempt, user="carol", check=False)
        assert refused.rc != 0, attempt
        assert "belongs to 'alice'" in refused.stderr, refused.stderr
        assert "you are carol" in refused.stderr
    # Not even the owner rewrites what decides which budgets pay.
    groups = {"metadata": {"annotations": {"sandboxer.io/owner-groups": "team-vision"}}}
    forged = await kubectl(*merge(groups), user="alice", check=False)
    assert forged.rc != 0
    assert "sandboxer.io/owner-groups" in forged.stderr
    stored = (await kubectl("get", "esb", "alices", "-n", NS, "-o", "json")).json()
    assert stored["spec"].get("suspend") is not True and stored["spec"]["gpus"] == 1
    assert "team-ml" in stored["metadata"]["annotations"]["sandboxer.io/owner-groups"]

    # The owner suspends her own; an admin (system:masters) may act for anyone.
    await kubectl(*merge({"spec": {"suspend": True}}), user="alice")
    await kubectl(*merge({"spec": {"suspend": False}}), user="admin")
    await kubectl("delete", "esb", "alices", "-n", NS, "--wait=false", user="admin")
