"""RBAC of the embedded API: request attributes, rule matching, bindings and the 403 body, as
kube-apiserver's RBAC authorizer decides them; and the playground's default policy."""

from __future__ import annotations

from typing import Any

import pytest

from sandboxer.devcluster.auth import AGENT_USER, DEFAULT_USERS, OPERATOR_USER, TEAMS
from sandboxer.devcluster.errors import ApiError
from sandboxer.devcluster.rbac import policy
from sandboxer.devcluster.rbac.attributes import forbidden, from_request
from sandboxer.devcluster.rbac.authorizer import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    ROLE_BINDINGS,
    ROLES,
    Authorizer,
)
from sandboxer.devcluster.rbac.rules import Attributes, allows
from sandboxer.devcluster.store import ResKey, Store

SANDBOXES = "experimentsandboxes"
GROUP = "sandboxer.io"
SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:sandboxer", "system:authenticated")


def res(verb: str, resource: str, group: str = "", namespace: str = "", **kw: str) -> Attributes:
    return Attributes(verb, True, group, resource, kw.get("sub", ""), namespace, kw.get("name", ""))


def url(verb: str, path: str) -> Attributes:
    return Attributes(verb, resource_request=False, path=path)


# -- one rule, one request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        # verbs
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, res("get", "pods"), True),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, res("list", "pods"), False),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, res("delete", "pods"), True),
        # apiGroups: the core group is "", and a group must match exactly unless "*"
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
         res("get", "pods", "apps"), False),
        ({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]},
         res("get", "pods", "apps"), True),
        # resources and subresources: "pods" does not grant "pods/portforward"
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
         res("create", "pods", sub="portforward", name="p"), False),
        ({"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]},
         res("create", "pods", sub="portforward", name="p"), True),
        ({"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]},
         res("create", "pods", name="p"), False),
        ({"apiGroups": [GROUP], "resources": ["*/status"], "verbs": ["patch"]},
         res("patch", SANDBOXES, GROUP, sub="status", name="nb"), True),
        ({"apiGroups": [GROUP], "resources": ["*/status"], "verbs": ["patch"]},
         res("patch", SANDBOXES, GROUP, name="nb"), False),
        ({"apiGroups": [GROUP], "resources": ["*"], "verbs": ["patch"]},
         res("patch", SANDBOXES, GROUP, sub="status", name="nb"), True),
        # resourceNames: only those names, and never a list (no name)
        ({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]},
         res("get", "secrets", name="a"), True),
        ({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]},
         res("get", "secrets", name="b"), False),
        ({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"], "resourceNames": ["a"]},
         res("list", "secrets"), False),
        # nonResourceURLs: exact or prefix*, and never for resource requests
        ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, url("get", "/healthz"), True),
        ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, url("get", "/apis/apps/v1"), True),
        ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, url("get", "/metrics"), False),
        ({"nonResourceURLs": ["*"], "verbs": ["get"]}, res("get", "pods"), False),
        ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, url("get", "/version"), False),
    ],
)  # fmt: skip
def test_one_rule_against_one_request(
    rule: dict[str, Any], attrs: Attributes, allowed: bool
) -> None:
    assert allows(rule, attrs) is allowed


# -- attributes of a request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "want"),
    [
        ("GET", "/apis/sandboxer.io/v1alpha1/namespaces/team-ml/experimentsandboxes", {},
         res("list", SANDBOXES, GROUP, "team-ml")),
        ("GET", "/apis/sandboxer.io/v1alpha1/namespaces/team-ml/experimentsandboxes",
         {"watch": "true"}, res("watch", SANDBOXES, GROUP, "team-ml")),
        ("GET", "/api/v1/namespaces/team-ml/secrets",
         {"fieldSelector": "metadata.name=tok", "watch": "1"},
         res("watch", "secrets", "", "team-ml", name="tok")),
        ("GET", "/api/v1/watch/namespaces/team-ml/pods", {}, res("watch", "pods", "", "team-ml")),
        ("POST", "/api/v1/namespaces/team-ml/pods/nb-0/portforward", {},
         res("create", "pods", "", "team-ml", sub="portforward", name="nb-0")),
        ("PATCH", "/apis/sandboxer.io/v1alpha1/namespaces/team-ml/experimentsandboxes/nb/status",
         {}, res("patch", SANDBOXES, GROUP, "team-ml", sub="status", name="nb")),
        ("PUT", "/apis/sandboxer.io/v1alpha1/computebudgets/b", {},
         res("update", "computebudgets", GROUP, name="b")),
        ("DELETE", "/api/v1/namespaces/team-ml/configmaps", {},
         res("deletecollection", "configmaps", "", "team-ml")),
        # A namespace is its own namespace; its status is its subresource.
        ("GET", "/api/v1/namespaces/team-ml", {},
         res("get", "namespaces", "", "team-ml", name="team-ml")),
        ("PUT", "/api/v1/namespaces/team-ml/status", {},
         res("update", "namespaces", "", "team-ml", sub="status", name="team-ml")),
        ("POST", "/api/v1/namespaces", {}, res("create", "namespaces")),
        # Discovery, version, health, OpenAPI: non-resource requests.
        ("GET", "/apis/sandboxer.io/v1alpha1", {}, url("get", "/apis/sandboxer.io/v1alpha1")),
        ("GET", "/api", {}, url("get", "/api")),
        ("GET", "/version", {}, url("get", "/version")),
        ("GET", "/openapi/v3", {}, url("get", "/openapi/v3")),
    ],
)  # fmt: skip
def test_request_attributes(
    method: str, path: str, query: dict[str, str], want: Attributes
) -> None:
    got = from_request(method, path, query)
    assert got == Attributes(**{**want.__dict__, "path": path})


# -- the 403 body ---------------------------------------------------------------------------------


def test_forbidden_is_kube_apiservers_status() -> None:
    attrs = from_request("GET", "/api/v1/namespaces/team-ml/secrets/nb-token", {})
    status = forbidden("carol", attrs).status()
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "nb-token" is forbidden: User "carol" cannot get resource "secrets" '
        'in API group "" in the namespace "team-ml"',
        "reason": "Forbidden",
        "details": {"name": "nb-token", "kind": "secrets"},
        "code": 403,
    }


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/apis/sandboxer.io/v1alpha1/namespaces/team-ml/experimentsandboxes",
         'experimentsandboxes.sandboxer.io is forbidden: User "bob" cannot list resource '
         '"experimentsandboxes" in API group "sandboxer.io" in the namespace "team-ml"'),
        ("POST", "/api/v1/namespaces/team-ml/pods/nb-0/portforward",
         'pods "nb-0" is forbidden: User "bob" cannot create resource "pods/portforward" in API '
         'group "" in the namespace "team-ml"'),
        ("POST", "/apis/sandboxer.io/v1alpha1/computebudgets",
         'computebudgets.sandboxer.io is forbidden: User "bob" cannot create resource '
         '"computebudgets" in API group "sandboxer.io" at the cluster scope'),
        ("GET", "/metrics", 'forbidden: User "bob" cannot get path "/metrics"'),
    ],
)  # fmt: skip
def test_forbidden_messages(method: str, path: str, message: str) -> None:
    error = forbidden("bob", from_request(method, path, {}))
    assert (error.code, error.reason, error.message) == (403, "Forbidden", message)


# -- bindings -----------------------------------------------------------------------------------


def put(store: Store, key: ResKey, obj: dict[str, Any]) -> dict[str, Any]:
    obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": store.next_rv()}}
    store.put(key, obj)
    return obj


def role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "rules": rules}  # fmt: skip


def user(name: str) -> dict[str, Any]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}


READ_PODS = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]


@pytest.fixture
def store() -> Store:
    store = Store()
    put(store, CLUSTER_ROLES, role("ClusterRole", "pod-reader", READ_PODS))
    return store


def test_a_cluster_role_bound_by_a_role_binding_holds_in_that_namespace_only(store: Store) -> None:
    authz = Authorizer(store)
    put(store, ROLE_BINDINGS, policy.binding("read", "pod-reader", [user("dana")], "team-ml"))
    assert authz.allowed("dana", (), res("list", "pods", namespace="team-ml"))[0]
    assert not authz.allowed("dana", (), res("list", "pods", namespace="team-vision"))[0]
    assert not authz.allowed("dana", (), res("list", "pods"))[0]  # all namespaces: cluster scope
    assert not authz.allowed("dana", (), res("delete", "pods", namespace="team-ml", name="p"))[0]


def test_a_cluster_role_binding_holds_everywhere(store: Store) -> None:
    authz = Authorizer(store)
    put(store, CLUSTER_ROLE_BINDINGS, policy.binding("read", "pod-reader", [user("dana")]))
    for namespace in ("team-ml", "team-vision", ""):
        assert authz.allowed("dana", (), res("get", "pods", namespace=namespace, name="p"))[0]
    assert not authz.allowed("erin", (), res("get", "pods", namespace="team-ml", name="p"))[0]


def test_a_role_binds_in_its_own_namespace(store: Store) -> None:
    authz = Authorizer(store)
    put(store, ROLES, role("Role", "reader", READ_PODS, "team-ml"))
    binding = policy.binding("read", "reader", [user("dana")], "team-ml")
    binding["roleRef"]["kind"] = "Role"
    put(store, ROLE_BINDINGS, binding)
    assert authz.allowed("dana", (), res("get", "pods", namespace="team-ml", name="p"))[0]
    assert not authz.allowed("dana", (), res("get", "pods", namespace="other", name="p"))[0]


def test_group_subjects_bind_every_member(store: Store) -> None:
    authz = Authorizer(store)
    put(store, ROLE_BINDINGS, policy.binding("read", "pod-reader", [policy.group("team-ml")],
                                             "team-ml"))  # fmt: skip
    assert authz.allowed("anyone", ("team-ml",), res("list", "pods", namespace="team-ml"))[0]
    assert not authz.allowed("anyone", ("team-vision",), res("list", "pods", namespace="team-ml"))[
        0
    ]


def test_service_account_subjects_are_users_by_their_namespaced_name(store: Store) -> None:
    authz = Authorizer(store)
    # No namespace in the subject: the binding's.
    robot = {"kind": "ServiceAccount", "name": "robot"}
    put(store, ROLE_BINDINGS, policy.binding("read", "pod-reader", [robot], "team-ml"))
    attrs = res("list", "pods", namespace="team-ml")
    assert authz.allowed("system:serviceaccount:team-ml:robot", (), attrs)[0]
    assert not authz.allowed("system:serviceaccount:other:robot", (), attrs)[0]
    assert not authz.allowed("robot", (), attrs)[0]


def test_changed_and_deleted_bindings_take_effect_at_once(store: Store) -> None:
    authz = Authorizer(store)
    attrs = res("list", "pods", namespace="team-ml")
    binding = put(
        store, ROLE_BINDINGS, policy.binding("r", "pod-reader", [user("dana")], "team-ml")
    )
    assert authz.allowed("dana", (), attrs)[0]
    binding = put(store, ROLE_BINDINGS, {**binding, "subjects": [user("erin")]})
    assert not authz.allowed("dana", (), attrs)[0]
    assert authz.allowed("erin", (), attrs)[0]
    store.remove(ROLE_BINDINGS, binding)
    assert not authz.allowed("erin", (), attrs)[0]


def test_a_binding_to_a_missing_role_allows_nothing_and_says_why(store: Store) -> None:
    authz = Authorizer(store)
    put(store, ROLE_BINDINGS, policy.binding("r", "no-such-role", [user("dana")], "team-ml"))
    allowed, reason = authz.allowed("dana", (), res("list", "pods", namespace="team-ml"))
    assert not allowed
    assert 'clusterroles.rbac.authorization.k8s.io "no-such-role" not found' in reason


def test_system_masters_may_do_anything_without_a_binding(store: Store) -> None:
    authz = Authorizer(store)
    assert authz.allowed("root", ("system:masters",), res("delete", "nodes", name="n"))[0]
    assert authz.allowed("root", ("system:masters",), url("get", "/metrics"))[0]


def test_authorize_raises_the_forbidden_status(store: Store) -> None:
    with pytest.raises(ApiError) as refused:
        Authorizer(store).authorize("dana", (), res("list", "pods", namespace="team-ml"))
    assert refused.value.code == 403
    assert refused.value.message.startswith('pods is forbidden: User "dana" cannot list')


# -- escalation ---------------------------------------------------------------------------------


def test_a_role_may_grant_only_what_its_writer_holds(store: Store) -> None:
    authz = Authorizer(store)
    put(store, ROLE_BINDINGS, policy.binding("r", "pod-reader", [user("dana")], "team-ml"))
    narrow = role("Role", "mine", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    authz.check_escalation(ROLES, "team-ml", narrow, "dana", ())
    wide = role("Role", "mine", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    with pytest.raises(ApiError) as refused:
        authz.check_escalation(ROLES, "team-ml", wide, "dana", ())
    assert refused.value.code == 403
    assert "is attempting to grant RBAC permissions not currently held" in refused.value.message
    assert '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}' in refused.value.message
    authz.check_escalation(ROLES, "team-ml", wide, "root", ("system:masters",))


def test_binding_a_role_needs_its_permissions_or_the_bind_verb(store: Store) -> None:
    authz = Authorizer(store)
    grant = policy.binding("r", "pod-reader", [user("erin")], "team-ml")
    with pytest.raises(ApiError):
        authz.check_escalation(ROLE_BINDINGS, "team-ml", grant, "dana", ())
    binder = [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
               "verbs": ["bind"], "resourceNames": ["pod-reader"]}]  # fmt: skip
    put(store, CLUSTER_ROLES, role("ClusterRole", "binder", binder))
    put(store, ROLE_BINDINGS, policy.binding("b", "binder", [user("dana")], "team-ml"))
    authz.check_escalation(ROLE_BINDINGS, "team-ml", grant, "dana", ())


# -- the playground's policy --------------------------------------------------------------------


@pytest.fixture
def playground() -> Authorizer:
    store = Store()
    authz = Authorizer(store)
    for key, obj in (*policy.bootstrap(), *policy.chart(TEAMS)):
        put(store, key, obj)
    return authz


def groups(name: str) -> tuple[str, ...]:
    return next(u.groups for u in DEFAULT_USERS if u.name == name)


def can(authz: Authorizer, name: str, method: str, path: str, **query: str) -> bool:
    who = groups(name) if name in {u.name for u in DEFAULT_USERS} else SA_GROUPS
    return authz.allowed(name, who, from_request(method, path, query))[0]


ESB = "/apis/sandboxer.io/v1alpha1/namespaces/{}/experimentsandboxes"


def test_team_members_work_with_sandboxes_in_their_team_namespace_only(
    playground: Authorizer,
) -> None:
    for name in ("alice", "carol"):
        assert can(playground, name, "POST", ESB.format("team-ml"))
        assert can(playground, name, "GET", ESB.format("team-ml") + "/nb")
        assert can(playground, name, "GET", ESB.format("team-ml"), watch="true")
        assert can(playground, name, "GET", ESB.format("team-ml") + "/nb/status")
        assert not can(playground, name, "GET", ESB.format("team-vision"))
        assert not can(playground, name, "PATCH", ESB.format("team-ml") + "/nb/status")
    assert can(playground, "bob", "POST", ESB.format("team-vision"))
    assert not can(playground, "bob", "GET", ESB.format("team-ml"))
    assert not can(playground, "alice", "GET", "/apis/sandboxer.io/v1alpha1/experimentsandboxes")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/team-ml/secrets/nb-token",
        "/api/v1/namespaces/team-ml/secrets",
        "/api/v1/namespaces/team-ml/pods",
        "/api/v1/namespaces/team-ml/pods/nb-0/portforward",
    ],
)
def test_users_get_no_secrets_and_no_pods(playground: Authorizer, path: str) -> None:
    for name in ("alice", "carol", "bob"):
        assert not can(playground, name, "GET", path)
        assert not can(playground, name, "POST", path)


@pytest.mark.parametrize(
    "path",
    [
        "/apis/sandboxer.io/v1alpha1/computebudgets",
        "/apis/sandboxer.io/v1alpha1/sandboxclasses",
        "/apis/sandboxer.io/v1alpha1/ratecards",
        "/apis/sandboxer.io/v1alpha1/gpunodereports",
    ],
)
def test_only_admin_writes_budgets_classes_rate_cards_and_node_reports(
    playground: Authorizer, path: str
) -> None:
    for name in ("alice", "carol", "bob"):
        assert not can(playground, name, "POST", path)
        assert not can(playground, name, "PATCH", path + "/x")
        assert not can(playground, name, "PATCH", path + "/x/status")
    assert can(playground, "admin", "POST", path)
    assert can(playground, "admin", "PATCH", path + "/x/status")
    assert not can(playground, OPERATOR_USER, "POST", path)


DISCOVERY = ["/api", "/apis", "/apis/sandboxer.io/v1alpha1", "/version", "/healthz", "/openapi/v2",
             "/openapi/v3/apis/apps/v1"]  # fmt: skip


@pytest.mark.parametrize("path", DISCOVERY)
def test_discovery_is_readable_by_every_authenticated_user(
    playground: Authorizer, path: str
) -> None:
    for name in ("alice", "bob", AGENT_USER):
        assert can(playground, name, "GET", path)
    assert not can(playground, "alice", "POST", path)


def test_the_operator_and_agent_hold_the_charts_roles(playground: Authorizer) -> None:
    status = ESB.format("team-ml") + "/nb/status"
    assert can(playground, OPERATOR_USER, "PATCH", status)
    assert can(playground, OPERATOR_USER, "POST", "/api/v1/namespaces/team-ml/secrets")
    assert not can(playground, OPERATOR_USER, "GET", "/api/v1/namespaces/team-ml/secrets/t")
    assert not can(playground, OPERATOR_USER, "POST", ESB.format("team-ml"))
    # Its leader Lease: in the release namespace only (the chart's Role there).
    leases = "/apis/coordination.k8s.io/v1/namespaces/{}/leases"
    assert can(playground, OPERATOR_USER, "POST", leases.format("sandboxer"))
    assert can(playground, OPERATOR_USER, "PUT", leases.format("sandboxer") + "/sandboxer-operator")
    assert not can(playground, OPERATOR_USER, "PUT", leases.format("kube-system") + "/x")
    reports = "/apis/sandboxer.io/v1alpha1/gpunodereports"
    assert can(playground, AGENT_USER, "POST", reports)
    assert can(playground, AGENT_USER, "PATCH", reports + "/gpu-node-0/status")
    assert can(playground, AGENT_USER, "GET", "/api/v1/pods", fieldSelector="spec.nodeName=n")
    assert not can(playground, AGENT_USER, "PATCH", reports + "/gpu-node-0")
    assert not can(playground, AGENT_USER, "GET", ESB.format("team-ml"))
