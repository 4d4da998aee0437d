"""The Kubernetes permissions of the operator and the agent: the one list the chart renders.

Each rule is (apiGroup, resource, verbs). `make chart` writes these lists into
`helm/sandboxer/files/rbac.yaml`, which the ClusterRole templates include, and a contract test
fails when the chart and this module disagree. Add a verb here when code starts making a new
kind of API call; never widen a rule in the chart by hand.
"""

from __future__ import annotations

from typing import Any

from sandboxer import GROUP

Rule = tuple[str, str, tuple[str, ...]]

_READ = ("get", "list", "watch")
_OWN = ("get", "list", "watch", "patch")
# Children are written create-or-patch (409 on create means "already there") and deleted when a
# sandbox is deleted early; they are also watched, so the operator notices drift and pod state.
_CHILD = ("get", "list", "watch", "create", "patch", "delete")

OPERATOR_RULES: list[Rule] = [
    # Its own kinds: kopf watches them and patches their status and its progress annotations
    # and finalizers (always PATCH, never PUT, so no `update`).
    (GROUP, "experimentsandboxes", _OWN),
    (GROUP, "experimentsandboxes/status", ("get", "patch")),
    (GROUP, "sandboxclasses", _OWN),
    (GROUP, "sandboxclasses/status", ("get", "patch")),
    (GROUP, "computebudgets", _OWN),
    (GROUP, "computebudgets/status", ("get", "patch")),
    # Read through kopf indexes only: prices, and the agents' per-node counters.
    (GROUP, "ratecards", _READ),
    (GROUP, "gpunodereports", _READ),
    # kopf: posting Events about the objects it handles (both Event APIs, by version).
    ("", "events", ("create",)),
    ("events.k8s.io", "events", ("create",)),
    # kopf: cluster-wide scanning of namespaces and of the served resources.
    ("", "namespaces", ("list", "watch")),
    ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
    # kopf: peering between replicas in HA mode (ClusterKopfPeering objects).
    ("kopf.dev", "clusterkopfpeerings", ("list", "watch", "patch", "get")),
    # Children of a sandbox.
    ("apps", "statefulsets", _CHILD),
    ("", "services", _CHILD),
    ("", "persistentvolumeclaims", _CHILD),
    # Token Secrets are only written: the operator never reads Secrets back (no get/list/watch),
    # so it cannot read other workloads' Secrets.
    ("", "secrets", ("create", "patch", "delete")),
    ("networking.k8s.io", "networkpolicies", _CHILD),
    ("networking.k8s.io", "ingresses", _CHILD),
    ("gateway.networking.k8s.io", "httproutes", _CHILD),
    # Pod state explains a sandbox's conditions (Pending for lack of GPUs, node, restarts).
    ("", "pods", _READ),
]

# Only when the operator (kopf's `settings.admission.managed`) owns the webhook configurations,
# i.e. `webhook.managedByOperator: true`; by default the chart creates them.
WEBHOOK_MANAGEMENT_RULES: list[Rule] = [
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        ("get", "list", "watch", "create", "patch"),
    ),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        ("get", "list", "watch", "create", "patch"),
    ),
]

# The agent reads the pods it attributes GPUs to and writes its node's report. RBAC cannot say
# "only pods on my node" for a ClusterRole: list/watch use a spec.nodeName field selector in the
# code, and the kubelet socket it reads is only its own node's. Likewise it cannot say "only my
# node's GPUNodeReport"; resourceNames cannot be templated per DaemonSet pod.
AGENT_RULES: list[Rule] = [
    ("", "pods", _READ),
    (GROUP, "gpunodereports", ("get", "create", "patch", "update")),
    (GROUP, "gpunodereports/status", ("get", "create", "patch", "update")),
]

# Per-team roles, bound with a RoleBinding in the team's namespace; they also aggregate into the
# built-in edit/admin and view roles.
USER_RULES: list[Rule] = [
    (
        GROUP,
        "experimentsandboxes",
        ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"),
    ),
    (GROUP, "experimentsandboxes/status", _READ),
]
VIEWER_RULES: list[Rule] = [
    (GROUP, "experimentsandboxes", _READ),
    (GROUP, "experimentsandboxes/status", _READ),
]

ROLES: dict[str, list[Rule]] = {
    "operator": OPERATOR_RULES,
    "webhookManagement": WEBHOOK_MANAGEMENT_RULES,
    "agent": AGENT_RULES,
    "user": USER_RULES,
    "viewer": VIEWER_RULES,
}


def policy_rules(rules: list[Rule]) -> list[dict[str, Any]]:
    """Kubernetes PolicyRule dicts, one per (group, resource), in the order given."""
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
        for group, resource, verbs in rules
    ]


def covers(rules: list[Rule], group: str, resource: str, verb: str) -> bool:
    """Whether a rule list allows one API call; for tests that check the code's calls."""
    return any(g == group and r == resource and verb in v for g, r, v in rules)
