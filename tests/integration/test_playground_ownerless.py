"""Never run a GPU for nobody: sandboxes that reach the API without admission (issue 22).

An admin deletes the webhook configurations, as a hand edit or a broken install would; what
alice creates then is stored as sent. The operator provisions nothing it cannot bill, and checks
the budgets itself before it starts a sandbox no webhook saw.
"""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import Kubectl
from tests.integration.operator_api import eventually

NS = "team-ml"
CONFIGS = "mutatingwebhookconfigurations,validatingwebhookconfigurations"


def sandbox(name: str, **meta: Any) -> str:
    spec = meta.pop("spec", {})
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "ExperimentSandbox",
            "metadata": {"name": name, **meta},
            "spec": {"class": "h100", "gpus": 1, **spec},
        }
    )


async def esb(kubectl: Kubectl, name: str) -> dict[str, Any]:
    out = await kubectl("get", "esb", name, "-n", NS, "-o", "json", user="alice")
    return out.json()  # type: ignore[no-any-return]


def ready_reason(obj: dict[str, Any]) -> str | None:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == "Ready":
            return str(cond["reason"])
    return None


async def children(kubectl: Kubectl, name: str) -> list[str]:
    out = await kubectl(
        "get", "statefulsets,pods", "-n", NS, "-l", f"sandboxer.io/sandbox={name}", "-o", "name"
    )
    return out.stdout.split()


async def test_without_admission_nothing_runs_for_nobody(pg_kubectl: Kubectl) -> None:
    kubectl = pg_kubectl
    saved = (await kubectl("get", CONFIGS, "-o", "json")).json()["items"]
    assert len(saved) == 2, "the playground registers both webhooks"
    # kopf manages them here (as with webhook.managedByOperator): fail closed, like the chart's.
    assert {hook["failurePolicy"] for c in saved for hook in c["webhooks"]} == {"Fail"}
    await kubectl("delete", CONFIGS, "--all")

    # Stored as sent: no owner, no groups, no budget check.
    await kubectl("create", "-n", NS, "-f", "-", input=sandbox("ownerless"), user="alice")
    assert "owner" not in (await esb(kubectl, "ownerless"))["spec"]

    async def owner_unknown() -> bool:
        return ready_reason(await esb(kubectl, "ownerless")) == "OwnerUnknown"

    await eventually(owner_unknown, within=30)
    held = await esb(kubectl, "ownerless")
    [ready] = [c for c in held["status"]["conditions"] if c["type"] == "Ready"]
    assert "admission did not run" in ready["message"]
    assert "spec.owner" in ready["message"]
    assert await children(kubectl, "ownerless") == []
    events = await kubectl(
        "get", "events", "-n", NS, "--field-selector", "involvedObject.name=ownerless", "-o", "json"
    )
    assert "OwnerUnknown" in {e["reason"] for e in events.json()["items"]}

    # An owner written by hand (no webhook to stamp or check it) is held to the budgets by the
    # operator: alice's budget admits hers; nobody's budget covers carol, so hers is suspended.
    groups = {"sandboxer.io/owner-groups": "team-ml"}
    await kubectl(
        "create", "-n", NS, "-f", "-", user="alice",
        input=sandbox("by-hand", annotations=groups, spec={"owner": "alice"}),
    )  # fmt: skip
    await kubectl(
        "create", "-n", NS, "-f", "-", user="alice",
        input=sandbox("for-carol", annotations=groups, spec={"owner": "carol"}),
    )  # fmt: skip
    await kubectl("wait", "--for=condition=Ready", "esb/by-hand", "-n", NS, "--timeout=60s")
    checked = await esb(kubectl, "by-hand")
    assert checked["metadata"]["annotations"]["sandboxer.io/admission"] == "operator"

    async def suspended() -> bool:
        obj = await esb(kubectl, "for-carol")
        return obj["spec"].get("suspend") is True and (
            obj.get("status", {}).get("suspendedReason") == "BudgetRefused"
        )

    await eventually(suspended, within=30)
    assert [p for p in await children(kubectl, "for-carol") if p.startswith("pod/")] == []
    events = await kubectl(
        "get", "events", "-n", NS, "--field-selector", "involvedObject.name=for-carol", "-o", "json"
    )
    refusals = [e["message"] for e in events.json()["items"] if e["reason"] == "BudgetRefused"]
    assert refusals and "carol" in refusals[0], refusals

    # An admin sets the owner and groups of the held one: it is checked and provisioned.
    await kubectl(
        "patch", "esb", "ownerless", "-n", NS, "--type", "merge",
        "-p", json.dumps({"spec": {"owner": "alice"}, "metadata": {"annotations": groups}}),
    )  # fmt: skip
    await kubectl("wait", "--for=condition=Ready", "esb/ownerless", "-n", NS, "--timeout=60s")

    # Admission restored: a sandbox alice creates is stamped by the webhooks again.
    for obj in saved:
        meta = obj["metadata"]
        obj["metadata"] = {"name": meta["name"], "labels": meta.get("labels", {})}
        await kubectl("create", "-f", "-", input=json.dumps(obj))
    await kubectl("create", "-n", NS, "-f", "-", input=sandbox("admitted"), user="alice")
    admitted = await esb(kubectl, "admitted")
    assert admitted["spec"]["owner"] == "alice"
    assert admitted["metadata"]["annotations"]["sandboxer.io/admission"] == "webhook"
    await kubectl("wait", "--for=condition=Ready", "esb/admitted", "-n", NS, "--timeout=60s")
