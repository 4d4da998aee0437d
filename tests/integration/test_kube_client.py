"""The operator's API client over real HTTPS: CA from the kubeconfig, bearer token, 409 -> patch."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
import trustme
from aiohttp import web

from sandboxer.controller.kube import KubeClient, UndeclaredCall
from sandboxer.tlscerts import self_signed


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, trustme.CA, list[tuple[str, str, Any]]]]:
    ca = trustme.CA()
    seen: list[tuple[str, str, Any]] = []
    existing = {"nb-token"}

    async def handle(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append((request.method, request.path, request.headers.get("Authorization")))
        if request.method == "POST" and body["metadata"]["name"] in existing:
            return web.json_response({"kind": "Status", "message": "already exists"}, status=409)
        return web.json_response(body or {})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"https://127.0.0.1:{port}", ca, seen
    await runner.cleanup()


def pvc(name: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "a"}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta}


def secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "a"}}


async def test_tls_token_and_idempotent_create(server: Any) -> None:
    url, ca, seen = server
    ca_data = base64.b64encode(ca.cert_pem.bytes()).decode()  # kubeconfig *-data form
    client = KubeClient(kopf.ConnectionInfo(server=url, ca_data=ca_data, token="sekret"))
    try:
        assert await client.ensure(pvc("other"), None) == "created"
        assert await client.ensure(pvc("nb-token"), None) == "unchanged"
        assert await client.ensure(pvc("nb-token"), {"metadata": {"labels": {}}}) == "patched"
        assert await client.ensure(pvc("x"), {"metadata": {}}, exists=True) == "patched"
    finally:
        await client.close()
    claims = "/api/v1/namespaces/a/persistentvolumeclaims"
    assert [(m, p) for m, p, _ in seen] == [
        ("POST", claims),
        ("POST", claims),
        ("POST", claims),
        ("PATCH", f"{claims}/nb-token"),
        ("PATCH", f"{claims}/x"),
    ]
    assert {auth for _, _, auth in seen} == {"Bearer sekret"}


async def test_unknown_ca_is_refused(server: Any) -> None:
    url, _, _ = server
    client = KubeClient(kopf.ConnectionInfo(server=url, ca_data=trustme.CA().cert_pem.bytes()))
    try:
        with pytest.raises(OSError, match="certificate"):
            await client.get("sandboxer.io/v1alpha1", "SandboxClass", None, "x")
    finally:
        await client.close()


async def test_calls_missing_from_the_declared_list_are_refused_unsent(server: Any) -> None:
    url, ca, seen = server
    client = KubeClient(kopf.ConnectionInfo(server=url, ca_data=ca.cert_pem.bytes()))
    try:
        # Token Secrets are write-once: RBAC grants no get and no patch on Secrets.
        with pytest.raises(UndeclaredCall, match="get Secret"):
            await client.get("v1", "Secret", "a", "nb-token")
        with pytest.raises(UndeclaredCall, match="patch Secret"):
            await client.ensure(secret("nb-token"), {"metadata": {}}, exists=True)
        assert await client.ensure(secret("nb-token"), None) == "unchanged"
    finally:
        await client.close()
    assert [m for m, _, _ in seen] == ["POST"]


def test_self_signed_webhook_certificate_loads() -> None:
    certfile, keyfile = self_signed("sandboxer.sandboxer.svc")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    verify = ssl.create_default_context(cafile=certfile)
    assert verify.cert_store_stats()["x509_ca"] == 1
