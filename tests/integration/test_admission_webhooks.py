"""The admission webhooks served by kopf, reached as AdmissionReview over real HTTP.

The operator runs against the embedded API, where kopf registers its managed webhook
configurations; the test then calls the webhooks directly, as the API server would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.operatorthread import OPERATOR_USER
from sandboxer.sandbox_rules import BudgetDecision, BudgetRequest
from tests.integration.conftest import eventually
from tests.integration.operator_api import NS, operator_config, running_operator, team_cluster

WEBHOOKS_V1 = "admissionregistration.k8s.io/v1"
OPERATOR_SA = OPERATOR_USER


class RecordingGate:
    """A budget gate that refuses more than 4 GPUs and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[BudgetRequest] = []

    async def check(self, request: BudgetRequest) -> BudgetDecision:
        self.asked.append(request)
        if request.gpus > 4:
            return BudgetDecision(False, "Budget 'team-a' has 3.5 GPU-hours left; ask for fewer.")
        return BudgetDecision(True)


def review(
    operation: str,
    user: str,
    new: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "a1b2",
            "kind": {"group": "sandboxer.io", "version": "v1alpha1", "kind": "ExperimentSandbox"},
            "resource": {
                "group": "sandboxer.io",
                "version": "v1alpha1",
                "resource": "experimentsandboxes",
            },
            "namespace": NS,
            "name": "nb",
            "operation": operation,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": new,
            "oldObject": old,
            "dryRun": dry_run,
        },
    }


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": "nb", "namespace": NS},
        "spec": {"class": "h100", "gpus": 1, **spec},
    }


class Webhooks:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    async def call(self, hook: str, request: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(f"{self.base}/{hook}", json=request) as resp:
            assert resp.status == 200
            return (await resp.json())["response"]  # type: ignore[no-any-return]

    async def mutate(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.call("sandbox-mutate", request)
        assert response["allowed"] is True
        if "patch" not in response:
            return []
        return json.loads(base64.b64decode(response["patch"]))  # type: ignore[no-any-return]


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    async with team_cluster() as cluster:
        yield cluster


@pytest.fixture
async def webhooks(cluster: DevCluster) -> AsyncIterator[tuple[Webhooks, RecordingGate]]:
    gate = RecordingGate()
    config = operator_config(cluster, webhooks=True, budget_gate=gate)
    async with aiohttp.ClientSession() as session, running_operator(config):
        # kopf fills its managed webhook configurations once its server listens.
        await eventually(
            lambda: all(
                (cluster.get(WEBHOOKS_V1, kind, "sandboxer.io") or {}).get("webhooks")
                for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
            ),
            within=30,
            message="kopf's managed webhook configurations",
        )
        yield Webhooks(f"http://127.0.0.1:{config.webhook_port}", session), gate


async def test_owner_is_stamped_from_the_authenticated_user(webhooks: Any) -> None:
    hooks, _ = webhooks
    patch = await hooks.mutate(review("CREATE", "alice", body()))
    assert {"op": "add", "path": "/spec/owner", "value": "alice"} in patch


async def test_update_without_owner_keeps_the_stored_one(webhooks: Any) -> None:
    hooks, _ = webhooks
    patch = await hooks.mutate(review("UPDATE", "alice", body(suspend=True), body(owner="alice")))
    assert any(p["path"] == "/spec/owner" and p["value"] == "alice" for p in patch)


async def test_bob_cannot_change_the_owner(webhooks: Any) -> None:
    hooks, _ = webhooks
    response = await hooks.call(
        "sandbox-validate", review("UPDATE", "bob", body(owner="bob"), body(owner="alice"))
    )
    assert response["allowed"] is False
    # Not his to change at all: the refusal names the owner.
    assert "belongs to 'alice'" in response["status"]["message"]
    assert "you are bob" in response["status"]["message"]


async def test_over_limit_is_refused_naming_the_limit(webhooks: Any) -> None:
    hooks, _ = webhooks
    response = await hooks.call(
        "sandbox-validate", review("CREATE", "alice", body(owner="alice", gpus=9))
    )
    assert response["allowed"] is False
    assert "maxGpus 8" in response["status"]["message"]


async def test_a_negative_quantity_is_refused_naming_the_field(webhooks: Any) -> None:
    hooks, gate = webhooks
    for spec, field in (
        ({"resources": {"cpu": "-1"}}, "spec.resources.cpu"),
        ({"resources": {"memory": "0"}}, "spec.resources.memory"),
        ({"storage": {"size": "-10Gi"}}, "spec.storage.size"),
    ):
        response = await hooks.call(
            "sandbox-validate", review("CREATE", "alice", body(owner="alice", **spec))
        )
        assert response["allowed"] is False, spec
        message = response["status"]["message"]
        assert message.startswith(f"{field}: "), message
        assert "not a positive quantity" in message and "class default" in message
    assert gate.asked == []  # refused before the budget is asked


async def test_budget_gate_is_asked_and_told_about_dry_run(webhooks: Any) -> None:
    hooks, gate = webhooks
    ok = await hooks.call(
        "sandbox-validate", review("CREATE", "alice", body(owner="alice", gpus=2), dry_run=True)
    )
    assert ok["allowed"] is True
    refused = await hooks.call(
        "sandbox-validate", review("CREATE", "alice", body(owner="alice", gpus=6))
    )
    assert refused["allowed"] is False
    assert "3.5 GPU-hours left" in refused["status"]["message"]
    assert [(r.owner, r.gpus, r.dry_run) for r in gate.asked] == [
        ("alice", 2, True),
        ("alice", 6, False),
    ]
    # The operator's own writes are not budget-checked again.
    await hooks.call(
        "sandbox-validate",
        review("UPDATE", OPERATOR_SA, body(owner="alice", suspend=True), body(owner="alice")),
    )
    assert len(gate.asked) == 2


async def test_managed_webhook_configurations_are_registered(
    webhooks: Any, cluster: DevCluster
) -> None:
    config = cluster.get(WEBHOOKS_V1, "ValidatingWebhookConfiguration", "sandboxer.io")
    assert config is not None
    urls = [w["clientConfig"]["url"] for w in config["webhooks"]]
    assert any(u.endswith("/sandbox-validate") for u in urls), urls
