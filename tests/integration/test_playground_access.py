"""Who may do what in the playground, from each user's seat through the real kubectl.

The embedded API evaluates the chart's own roles: alice and carol hold `sandboxer-user` in
team-ml, bob in team-vision, admin is cluster-admin. Refusals are kube-apiserver's 403.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from sandboxer.devcluster.playground import Playground
from tests.integration.conftest import ROOT, Kubectl

pytestmark = pytest.mark.slow  # a whole playground

SANDBOX = str(ROOT / "examples" / "sandbox.yaml")
USERS = ("alice", "carol", "bob")
# Objects the playground starts with (examples/ and the agents): one of each admin-only kind.
ADMIN_ONLY = {
    "computebudgets": "researchers",
    "sandboxclasses": "h100",
    "ratecards": "default",
    "gpunodereports": "gpu-node-0",
}


def forbidden(user: str, verb: str, resource: str, where: str) -> str:
    return f'User "{user}" cannot {verb} resource "{resource}" in API group "sandboxer.io" {where}'


def budget(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "ComputeBudget",
            "metadata": {"name": name},
            "spec": {"subjects": [{"kind": "User", "name": name}], "allowance": {"gpuHours": 1}},
        }
    )


async def alices_sandbox(kubectl: Kubectl) -> None:
    await kubectl("apply", "-f", SANDBOX, user="alice")
    await kubectl("wait", "--for=condition=Ready", "esb/my-notebook", "--timeout=60s", user="alice")


async def test_alice_creates_and_reads_hers_carol_cannot_read_its_token_bob_cannot_list(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    kubectl = pg_kubectl
    await alices_sandbox(kubectl)
    esb = (await kubectl("get", "esb", "my-notebook", "-o", "json", user="alice")).json()
    assert (esb["metadata"]["namespace"], esb["spec"]["owner"]) == ("team-ml", "alice")

    # The token Secret exists (admin sees it); carol, in the same team, may not read it.
    secret = await kubectl("get", "secret", "my-notebook-token", "-n", "team-ml", "-o", "name")
    assert secret.stdout.strip() == "secret/my-notebook-token"
    read = await kubectl("get", "secret", "my-notebook-token", user="carol", check=False)
    assert read.rc != 0
    assert (
        'Error from server (Forbidden): secrets "my-notebook-token" is forbidden: User "carol" '
        'cannot get resource "secrets" in API group "" in the namespace "team-ml"'
    ) in read.stderr
    # The body is kube-apiserver's Status.
    async with (
        playground.cluster.session("carol") as http,
        http.get("/api/v1/namespaces/team-ml/secrets/my-notebook-token") as resp,
    ):
        assert resp.status == 403
        status = await resp.json()
    assert {k: status[k] for k in ("kind", "status", "reason", "code", "details")} == {
        "kind": "Status",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "details": {"name": "my-notebook-token", "kind": "secrets"},
    }

    # bob is in team-vision: team-ml's sandboxes are not his to list, read or delete.
    listed = await kubectl("get", "experimentsandboxes", "-n", "team-ml", user="bob", check=False)
    assert listed.rc != 0
    assert (
        "Error from server (Forbidden): experimentsandboxes.sandboxer.io is forbidden: "
        + forbidden("bob", "list", "experimentsandboxes", 'in the namespace "team-ml"')
    ) in listed.stderr
    for args in (("get", "esb", "my-notebook"), ("delete", "esb", "my-notebook")):
        refused = await kubectl(*args, "-n", "team-ml", user="bob", check=False)
        assert refused.rc != 0 and 'User "bob" cannot' in refused.stderr, refused.stderr
    # ... and no namespace-wide view either.
    everywhere = await kubectl("get", "esb", "-A", user="bob", check=False)
    assert everywhere.rc != 0 and "at the cluster scope" in everywhere.stderr
    assert (await kubectl("get", "esb", "my-notebook", "-n", "team-ml")).rc == 0  # admin


async def patched(playground: Playground, user: str, path: str) -> tuple[int, str]:
    """A merge PATCH as `user` straight to the API (kubectl patch GETs first: a get refusal)."""
    headers = {"Content-Type": "application/merge-patch+json"}
    body = {"metadata": {"labels": {"touched": "yes"}}}
    async with (
        playground.cluster.session(user) as http,
        http.patch(path, json=body, headers=headers) as resp,
    ):
        return resp.status, (await resp.json()).get("message", "")


async def test_nobody_but_admin_writes_budgets_classes_rate_cards_reports_or_status(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    kubectl = pg_kubectl
    await alices_sandbox(kubectl)
    await kubectl("wait", "--for=create", "gpunodereport/gpu-node-0", "--timeout=30s")
    merge = ("--type", "merge", "-p", json.dumps({"metadata": {"labels": {"touched": "yes"}}}))
    cluster = "at the cluster scope"

    async def refusals(user: str) -> None:
        created = await kubectl("create", "-f", "-", input=budget(user), user=user, check=False)
        assert created.rc != 0
        assert forbidden(user, "create", "computebudgets", cluster) in created.stderr
        for plural, name in ADMIN_ONLY.items():
            with_kubectl = await kubectl("patch", plural, name, *merge, user=user, check=False)
            assert with_kubectl.rc != 0 and f'User "{user}" cannot' in with_kubectl.stderr
            for sub in ("", "/status"):
                path = f"/apis/sandboxer.io/v1alpha1/{plural}/{name}{sub}"
                code, message = await patched(playground, user, path)
                assert code == 403, (user, path)
                assert forbidden(user, "patch", f"{plural}{sub}", cluster) in message
        # Sandbox status is the operator's, even on one's own sandbox.
        path = "/apis/sandboxer.io/v1alpha1/namespaces/team-ml/experimentsandboxes/my-notebook"
        code, message = await patched(playground, user, path + "/status")
        assert code == 403
        where = 'in the namespace "team-ml"'
        assert forbidden(user, "patch", "experimentsandboxes/status", where) in message

    await asyncio.gather(*(refusals(user) for user in USERS))
    for plural, name in ADMIN_ONLY.items():
        labels = await kubectl("get", plural, name, "-o", "jsonpath={.metadata.labels.touched}")
        assert labels.stdout == "", plural  # nothing was written
    # The same PATCH as admin is allowed: the refusals above were RBAC's, not a bad path.
    for plural, name in ADMIN_ONLY.items():
        path = f"/apis/sandboxer.io/v1alpha1/{plural}/{name}"
        assert (await patched(playground, "admin", path))[0] == 200, path

    # admin may.
    await kubectl("create", "-f", "-", input=budget("extra"))
    await kubectl("patch", "sandboxclass", "h100", *merge)
    touched = await kubectl("get", "sandboxclass", "h100", "-o", "jsonpath={.metadata.labels}")
    assert json.loads(touched.stdout) == {"touched": "yes"}
