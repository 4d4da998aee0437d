"""The admission webhooks served by kopf, reached as AdmissionReview over real HTTP."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kmock
import pytest
import yaml

from sandboxer.controller.config import OperatorConfig
from sandboxer.sandbox_rules import BudgetDecision, BudgetRequest
from tests.integration.emulator import (
    CREATED,
    ESB,
    NS,
    Api,
    declare,
    eventually,
    run_operator_thread,
)

WEBHOOK_CONFIGS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
OPERATOR_SA = "system:serviceaccount:sandboxer:operator"


class RecordingGate:
    """A budget gate that refuses more than 4 GPUs and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[BudgetRequest] = []

    async def check(self, request: BudgetRequest) -> BudgetDecision:
        self.asked.append(request)
        if request.gpus > 4:
            return BudgetDecision(False, "Budget 'team-a' has 3.5 GPU-hours left; ask for fewer.")
        return BudgetDecision(True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
async def webhooks(
    kmock: kmock.KubernetesEmulator, repo_root: Any
) -> AsyncIterator[tuple[Webhooks, RecordingGate]]:
    declare(kmock)
    port = free_port()
    gate = RecordingGate()
    config = OperatorConfig(
        server=str(kmock.url),
        webhook_port=port,
        webhook_addr="127.0.0.1",
        dev=True,
        operator_users=(OPERATOR_SA,),
        budget_gate=gate,
    )
    async with aiohttp.ClientSession() as session:
        api = Api(str(kmock.url), session)
        cls = yaml.safe_load((repo_root / "examples" / "class-h100.yaml").read_text())
        assert await api.post(f"{ESB}/sandboxclasses", cls) in CREATED
        async with run_operator_thread(config):
            # kopf registers the webhook configuration once its server listens.
            await eventually(lambda: api.get(f"{WEBHOOK_CONFIGS}/sandboxer.io"))
            yield Webhooks(f"http://127.0.0.1:{port}", session), gate


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
    assert "spec.owner" in response["status"]["message"]
    assert "'alice'" in response["status"]["message"]


async def test_over_limit_is_refused_naming_the_limit(webhooks: Any) -> None:
    hooks, _ = webhooks
    response = await hooks.call(
        "sandbox-validate", review("CREATE", "alice", body(owner="alice", gpus=9))
    )
    assert response["allowed"] is False
    assert "maxGpus 8" in response["status"]["message"]


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


async def test_managed_webhook_configurations_are_registered(webhooks: Any, kmock: Any) -> None:
    async with aiohttp.ClientSession() as session:
        config = await Api(str(kmock.url), session).get(f"{WEBHOOK_CONFIGS}/sandboxer.io")
    urls = [w["clientConfig"]["url"] for w in config["webhooks"]]
    assert any(u.endswith("/sandbox-validate") for u in urls), urls
