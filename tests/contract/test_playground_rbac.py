"""The playground evaluates the roles users get: its ClusterRoles and ClusterRoleBindings are
what `helm template` renders for the chart (release and namespace `sandboxer`), and each team's
RoleBinding names the chart's `sandboxer-user` role."""

from __future__ import annotations

from typing import Any

from sandboxer.devcluster.auth import TEAMS
from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.rbac import policy
from tests.contract.helm_chart import CHART, objects, run_helm

GROUP = "rbac.authorization.k8s.io"
RBAC = f"{GROUP}/v1"
KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
Key = tuple[str, str, str]  # kind, namespace ("" for cluster objects), name


def _key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def _rendered(*extra: str) -> dict[Key, dict[str, Any]]:
    proc = run_helm("template", policy.RELEASE, str(CHART), "--namespace", policy.NAMESPACE, *extra)
    assert proc.returncode == 0, proc.stderr
    return {_key(o): o for o in objects(proc.stdout) if o["kind"] in KINDS}


def _grants(obj: dict[str, Any]) -> dict[str, Any]:
    """What an RBAC object grants; labels and annotations are the chart's bookkeeping."""
    return {key: obj.get(key) for key in ("rules", "roleRef", "subjects")}


def _team_binding(team: str) -> dict[str, Any]:
    return {
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "sandboxer-user"},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": team}],
    }


async def test_the_playground_holds_the_charts_roles_and_bindings() -> None:
    chart = _rendered()
    async with DevCluster() as cluster:
        served = {_key(o): o for kind in KINDS for o in cluster.list(RBAC, kind)}
    for key, obj in chart.items():
        assert key in served, f"the playground lacks the chart's {key}"
        assert _grants(served[key]) == _grants(obj), key
    # Besides the chart's: kube-apiserver's own bootstrap roles and the teams' bindings.
    bootstrap = {_key(obj) for _, obj in policy.bootstrap()}
    teams = {("RoleBinding", team, "sandboxer-user"): team for team in TEAMS}
    assert set(served) == set(chart) | bootstrap | set(teams)
    assert ("ClusterRole", "", "sandboxer-user") in chart
    for key, team in teams.items():
        assert {k: served[key][k] for k in ("roleRef", "subjects")} == _team_binding(team)


def test_the_in_process_operators_role_is_the_managed_webhook_render() -> None:
    """The playground's own operator registers its webhooks (kopf-managed), as the chart's
    `webhook.managedByOperator: true` does; its role is that render's."""
    chart = _rendered("--set", "webhook.managedByOperator=true")
    role = chart[("ClusterRole", "", policy.OPERATOR_ROLE)]
    assert _grants(policy.operator_role(manages_webhooks=True)) == _grants(role)
    assert _grants(policy.operator_role(manages_webhooks=False)) == _grants(
        _rendered()[("ClusterRole", "", policy.OPERATOR_ROLE)]
    )


def test_cluster_admin_is_bound_to_system_masters_only() -> None:
    objs = {(o["kind"], o["metadata"]["name"]): o for _, o in policy.bootstrap()}
    binding = objs[("ClusterRoleBinding", "cluster-admin")]
    assert binding["subjects"] == [policy.group("system:masters")]
    assert objs[("ClusterRole", "cluster-admin")]["rules"][0] == {
        "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]
    }  # fmt: skip
