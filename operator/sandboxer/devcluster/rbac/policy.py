"""The RBAC objects a dev cluster starts with: kube-apiserver's bootstrap roles that matter here,
the chart's roles and bindings (rendered from `sandboxer.rbac`, as `make chart` writes them
into the chart, for the release `sandboxer` in namespace `sandboxer`), and each team's binding
of the chart's `sandboxer-user` role in its namespace.
"""

from __future__ import annotations

from typing import Any

from sandboxer import rbac
from sandboxer.devcluster.rbac.authorizer import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    GROUP,
    MASTERS,
    ROLE_BINDINGS,
    ROLES,
)
from sandboxer.devcluster.store import ResKey

RELEASE = "sandboxer"  # the chart installed as `helm install sandboxer -n sandboxer`
NAMESPACE = "sandboxer"
OPERATOR_ROLE = f"{RELEASE}-operator"  # the chart's "sandboxer.operator.fullname"
AGENT_ROLE = f"{RELEASE}-agent"
USER_ROLE = "sandboxer-user"
VIEWER_ROLE = "sandboxer-viewer"
AUTHENTICATED = "system:authenticated"


def service_account_user(name: str, namespace: str = NAMESPACE) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def _meta(name: str, namespace: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return meta


def cluster_role(name: str, rules: list[dict[str, Any]], namespace: str = "") -> dict[str, Any]:
    """A ClusterRole, or with `namespace` a Role there."""
    kind = "Role" if namespace else "ClusterRole"
    return {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": _meta(name, namespace),
            "rules": rules}  # fmt: skip


def binding(
    name: str,
    role: str,
    subjects: list[dict[str, Any]],
    namespace: str = "",
    role_kind: str = "ClusterRole",
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role},
        "subjects": subjects,
    }


def group(name: str) -> dict[str, Any]:
    return {"apiGroup": GROUP, "kind": "Group", "name": name}


def service_account(name: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}


_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version",
                   "/version/", "/healthz", "/livez", "/readyz"]  # fmt: skip


def bootstrap() -> list[tuple[ResKey, dict[str, Any]]]:
    """kube-apiserver's own: cluster-admin for system:masters, discovery and self-review for
    every authenticated user."""
    return [
        (CLUSTER_ROLES, cluster_role("cluster-admin", [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ])),
        (CLUSTER_ROLE_BINDINGS, binding("cluster-admin", "cluster-admin", [group(MASTERS)])),
        (CLUSTER_ROLES, cluster_role("system:discovery", [
            {"nonResourceURLs": _DISCOVERY_URLS, "verbs": ["get"]},
        ])),
        (CLUSTER_ROLE_BINDINGS, binding("system:discovery", "system:discovery",
                                        [group(AUTHENTICATED)])),
        (CLUSTER_ROLES, cluster_role("system:basic-user", [
            {"apiGroups": ["authorization.k8s.io"],
             "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
             "verbs": ["create"]},
        ])),
        (CLUSTER_ROLE_BINDINGS, binding("system:basic-user", "system:basic-user",
                                        [group(AUTHENTICATED)])),
    ]  # fmt: skip


def operator_role(manages_webhooks: bool) -> dict[str, Any]:
    """The chart's operator ClusterRole; `manages_webhooks` as `webhook.managedByOperator`."""
    rules = rbac.OPERATOR_RULES + (rbac.WEBHOOK_MANAGEMENT_RULES if manages_webhooks else [])
    return cluster_role(OPERATOR_ROLE, rbac.policy_rules(rules))


def chart(teams: tuple[str, ...]) -> list[tuple[ResKey, dict[str, Any]]]:
    """The chart's roles and bindings (defaults), and one RoleBinding per team binding its
    group to `sandboxer-user` in the team's namespace."""
    objs: list[tuple[ResKey, dict[str, Any]]] = [
        (CLUSTER_ROLES, operator_role(manages_webhooks=False)),
        (CLUSTER_ROLE_BINDINGS, binding(OPERATOR_ROLE, OPERATOR_ROLE,
                                        [service_account(OPERATOR_ROLE)])),
        # Leader election: Leases in the release namespace only (a Role there).
        (ROLES, cluster_role(OPERATOR_ROLE, rbac.policy_rules(rbac.LEADER_ELECTION_RULES),
                             NAMESPACE)),
        (ROLE_BINDINGS, binding(OPERATOR_ROLE, OPERATOR_ROLE, [service_account(OPERATOR_ROLE)],
                                NAMESPACE, role_kind="Role")),
        (CLUSTER_ROLES, cluster_role(AGENT_ROLE, rbac.policy_rules(rbac.AGENT_RULES))),
        (CLUSTER_ROLE_BINDINGS, binding(AGENT_ROLE, AGENT_ROLE, [service_account(AGENT_ROLE)])),
        (CLUSTER_ROLES, cluster_role(USER_ROLE, rbac.policy_rules(rbac.USER_RULES))),
        (CLUSTER_ROLES, cluster_role(VIEWER_ROLE, rbac.policy_rules(rbac.VIEWER_RULES))),
    ]  # fmt: skip
    for team in teams:
        objs.append((ROLE_BINDINGS, binding(USER_ROLE, USER_ROLE, [group(team)], team)))
    return objs
