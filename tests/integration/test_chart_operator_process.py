"""`sandboxer operator` started with exactly the args and env the chart renders.

The rendered Deployment's container is run as a process against the embedded API: every flag and
variable must be accepted, kopf's /healthz must answer where the probes look, the webhooks must
serve the chart's paths over TLS from the mounted certificate folder, and kopf's managed
configurations must call the same Service, port and paths as the chart's own configurations.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from sandboxer.devcluster.cluster import DevCluster
from tests.contract.helm_chart import NAMESPACE, find, objects, template_text
from tests.integration.operator_api import eventually, team_cluster
from tests.integration.test_admission_webhooks import body, review

ADMISSION = "admissionregistration.k8s.io/v1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _container(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = find(objects(text), "Deployment", "-operator")["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def _env(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The container's env as the kubelet resolves it (the downward API fields the chart uses)."""
    fields = {
        "metadata.namespace": NAMESPACE,
        "metadata.name": "sandboxer-operator-0",
        "spec.serviceAccountName": pod["serviceAccountName"],
        "status.podIP": "127.0.0.1",
    }
    out = {}
    for var in container["env"]:
        if "value" in var:
            out[var["name"]] = var["value"]
        else:
            out[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return out


def _cert_dir(folder: Path, ca: trustme.CA, service: str) -> None:
    """What the webhook TLS Secret mounts: tls.crt, tls.key, ca.crt."""
    folder.mkdir()
    leaf = ca.issue_cert("127.0.0.1", f"{service}.{NAMESPACE}.svc")
    (folder / "tls.crt").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    (folder / "tls.key").write_bytes(leaf.private_key_pem.bytes())
    (folder / "ca.crt").write_bytes(ca.cert_pem.bytes())


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    async with team_cluster() as cluster:
        yield cluster


@pytest.fixture
async def chart_operator(
    cluster: DevCluster, tmp_path: Path
) -> AsyncIterator[tuple[dict[str, str], int, int, trustme.CA]]:
    """The operator process from the chart's managed-webhook render; (env, probe, webhook, CA)."""
    text = template_text("--set", "webhook.managedByOperator=true")
    pod, container = _container(text)
    # What `helm install` creates for the operator's service account: the embedded API
    # evaluates RBAC, so the process runs with exactly the chart's roles.
    await cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for obj in objects(text):
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            await cluster.apply(obj)
    env = _env(pod, container)
    probe, webhook = _free_port(), _free_port()
    args = [
        a.replace(f":{container['ports'][0]['containerPort']}/", f":{probe}/")
        for a in container["args"]
    ]
    assert container["ports"][0]["name"] == "healthz"
    ca = trustme.CA()
    _cert_dir(tmp_path / "webhook", ca, env["SANDBOXER_WEBHOOK_SERVICE"])
    env |= {"SANDBOXER_WEBHOOK_CERT_DIR": str(tmp_path / "webhook")}
    env |= {"SANDBOXER_WEBHOOK_PORT": str(webhook)}
    user = f"system:serviceaccount:{env['SANDBOXER_NAMESPACE']}:"
    user += env["SANDBOXER_SERVICE_ACCOUNT"]
    cluster.add_user(user, ("system:serviceaccounts", "system:authenticated"))
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", user=user)
    process_env = {**os.environ, **env, "KUBECONFIG": str(kubeconfig)}
    process_env.pop("KUBERNETES_SERVICE_HOST", None)
    log = tmp_path / "operator.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from sandboxer.cli import main; main()", *args,
            env=process_env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        yield env, probe, webhook, ca
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await proc.wait()
        assert proc.returncode == 0, log.read_text()[-3000:]


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    """The JSON body of a 200 answer ({} counts), else None."""
    try:
        async with session.get(url) as resp:
            return [await resp.json(content_type=None)] if resp.status == 200 else None
    except aiohttp.ClientConnectionError:
        return None  # not listening yet


async def test_chart_args_and_env_run_the_operator(
    chart_operator: Any, cluster: DevCluster
) -> None:
    env, probe, webhook, ca = chart_operator
    chart_hooks = {
        o["kind"]: o["webhooks"][0]["clientConfig"]["service"]
        for o in objects(template_text())
        if o["kind"].endswith("WebhookConfiguration")
    }
    async with aiohttp.ClientSession() as session:
        assert await eventually(lambda: _get(session, f"http://127.0.0.1:{probe}/healthz"), 30)
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):

            async def managed(kind: str = kind) -> Any:
                found = cluster.get(ADMISSION, kind, "sandboxer.io")
                return found if found and found.get("webhooks") else None

            config = await eventually(managed, 30)
            [hook] = config["webhooks"]
            # kopf calls the chart's Service on the chart's port and path.
            assert hook["clientConfig"]["service"] == chart_hooks[kind]
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca.cert_pem.bytes()

        tls = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
        url = f"https://127.0.0.1:{webhook}{chart_hooks['MutatingWebhookConfiguration']['path']}"
        async with session.post(url, json=review("CREATE", "alice", body()), ssl=tls) as resp:
            answer = (await resp.json())["response"]
        patch = json.loads(base64.b64decode(answer["patch"]))
        assert {"op": "add", "path": "/spec/owner", "value": "alice"} in patch

        # The chart's SANDBOXER_NAMESPACE + SANDBOXER_SERVICE_ACCOUNT name the operator's user.
        me = f"system:serviceaccount:{env['SANDBOXER_NAMESPACE']}:"
        me += env["SANDBOXER_SERVICE_ACCOUNT"]
        url = f"https://127.0.0.1:{webhook}{chart_hooks['ValidatingWebhookConfiguration']['path']}"
        for user, allowed in ((me, True), ("bob", False)):
            request = review("UPDATE", user, body(owner="bob"), body(owner="alice"))
            async with session.post(url, json=request, ssl=tls) as resp:
                assert (await resp.json())["response"]["allowed"] is allowed, user
