"""Admission webhooks called as AdmissionReview v1 over HTTPS, with the user's identity."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import pytest
import trustme

from tests.integration.conftest import Kubectl

SANDBOX = """
apiVersion: sandboxer.io/v1alpha1
kind: ExperimentSandbox
metadata: {name: nb}
spec: {class: h100, gpus: 1}
"""


class Webhook:
    """A tiny webhook server: stamps spec.owner, and denies bob."""

    def __init__(self) -> None:
        self.reviews: list[dict[str, Any]] = []
        self.ca = trustme.CA()
        self.url = ""

    async def mutate(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        review = await request.json()
        self.reviews.append(review)
        req = review["request"]
        patch = [{"op": "add", "path": "/spec/owner", "value": req["userInfo"]["username"]}]
        response = {
            "uid": req["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
        }
        return aiohttp.web.json_response({**review, "response": response})

    async def validate(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        review = await request.json()
        self.reviews.append(review)
        req = review["request"]
        allowed = req["userInfo"]["username"] != "bob"
        response: dict[str, Any] = {"uid": req["uid"], "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 403, "message": "bob has no budget left"}
        return aiohttp.web.json_response({**review, "response": response})

    def configurations(self, failure_policy: str = "Fail", port: int | None = None) -> str:
        bundle = base64.b64encode(self.ca.cert_pem.bytes()).decode()
        url = self.url if port is None else f"https://127.0.0.1:{port}"
        rules = [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": ["sandboxer.io"],
                "apiVersions": ["v1alpha1"],
                "resources": ["experimentsandboxes"],
            }
        ]

        def hook(kind: str, path: str) -> dict[str, Any]:
            return {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": f"sandboxer-{path}"},
                "webhooks": [
                    {
                        "name": f"{path}.sandboxer.io",
                        "clientConfig": {"url": f"{url}/{path}", "caBundle": bundle},
                        "rules": rules,
                        "failurePolicy": failure_policy,
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                    }
                ],
            }

        docs = [
            hook("MutatingWebhookConfiguration", "mutate"),
            hook("ValidatingWebhookConfiguration", "validate"),
        ]
        return "\n---\n".join(json.dumps(d) for d in docs)


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = aiohttp.web.Application()
    app.router.add_post("/mutate", hook.mutate)
    app.router.add_post("/validate", hook.validate)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    hook.ca.issue_cert("127.0.0.1").configure_cert(context)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"https://127.0.0.1:{port}"
    yield hook
    await runner.cleanup()


async def test_webhooks_see_the_user_and_mutate(kubectl: Kubectl, webhook: Webhook) -> None:
    await kubectl("apply", "-f", "-", input=webhook.configurations())
    await kubectl("apply", "-f", "-", input=SANDBOX, user="alice")
    obj = (await kubectl("get", "esb", "nb", "-n", "team-ml", "-o", "json")).json()
    assert obj["spec"]["owner"] == "alice"
    user = webhook.reviews[0]["request"]["userInfo"]
    assert user["username"] == "alice"
    assert "team-ml" in user["groups"]
    validated = webhook.reviews[1]["request"]
    assert validated["object"]["spec"]["owner"] == "alice"  # validation sees the mutation
    assert validated["operation"] == "CREATE"
    assert webhook.reviews[0]["apiVersion"] == "admission.k8s.io/v1"


async def test_denial_returns_the_webhook_message(kubectl: Kubectl, webhook: Webhook) -> None:
    await kubectl("apply", "-f", "-", input=webhook.configurations())
    out = await kubectl("apply", "-f", "-", input=SANDBOX, user="bob", check=False)
    assert out.rc != 0
    assert (
        'admission webhook "validate.sandboxer.io" denied the request: bob has no budget left'
        in out.stderr
    )
    assert (await kubectl("get", "esb", "nb", "-n", "team-vision", check=False)).rc != 0


async def test_failure_policy(kubectl: Kubectl, webhook: Webhook) -> None:
    unreachable = webhook.configurations("Fail", port=1)
    await kubectl("apply", "-f", "-", input=unreachable)
    out = await kubectl("apply", "-f", "-", input=SANDBOX, user="alice", check=False)
    assert out.rc != 0
    assert 'failed calling webhook "mutate.sandboxer.io"' in out.stderr

    await kubectl("apply", "-f", "-", input=webhook.configurations("Ignore", port=1))
    await kubectl("apply", "-f", "-", input=SANDBOX, user="alice")


async def test_wrong_ca_bundle_is_a_webhook_failure(kubectl: Kubectl, webhook: Webhook) -> None:
    other = trustme.CA()
    docs = webhook.configurations().replace(
        base64.b64encode(webhook.ca.cert_pem.bytes()).decode(),
        base64.b64encode(other.cert_pem.bytes()).decode(),
    )
    await kubectl("apply", "-f", "-", input=docs)
    out = await kubectl("apply", "-f", "-", input=SANDBOX, user="alice", check=False)
    assert out.rc != 0
    assert "certificate verify failed" in out.stderr
