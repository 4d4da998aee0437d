"""The Kubernetes permissions of the operator and the agent: the one list the chart renders.

Each rule is (apiGroup, resource, verbs). `make chart` writes these lists into
`helm/sandboxer/files/rbac.yaml`, which the ClusterRole templates include. Contract tests fail
when the chart and this module disagree, when the code makes a call no rule grants, and when a
rule grants a verb nothing uses. Add a verb here when code starts making a new kind of API call;
never widen a rule in the chart by hand.
"""

from __future__ import annotations

from typing import Any

from sandboxer import GROUP

Rule = tuple[str, str, tuple[str, ...]]

_READ = ("get", "list", "watch")
_WRITE = ("create", "patch")  # create-or-patch (409 on create means "already there")

# Exactly the calls the operator makes (tests/contract/test_rbac_coverage.py checks both ways):
# kopf's watches and patches, derived from the handler registry, plus the calls our own client
# declares in sandboxer.controller.kube.CALLS. kopf always PATCHes, never PUTs: no `update`.
OPERATOR_RULES: list[Rule] = [
    # Handled by kopf: watched, and patched for its progress annotations and for status.
    (GROUP, "experimentsandboxes", ("list", "watch", "patch")),
    (GROUP, "experimentsandboxes/status", ("patch",)),
    # Children carry an ownerReference with blockOwnerDeletion (kopf.adopt), which API servers
    # with OwnerReferencesPermissionEnforcement allow only to who may update the owner's
    # finalizers.
    (GROUP, "experimentsandboxes/finalizers", ("update",)),
    # Indexed by kopf; read once by the validating webhook before the index is filled.
    (GROUP, "sandboxclasses", ("get", "list", "watch")),
    # kopf: Events about the objects it handles (the core v1 API).
    ("", "events", ("create",)),
    # kopf: follows which resources the cluster serves. Namespaces are watched only when
    # serving some namespaces (--namespace globs), which the chart never does.
    ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
    # Children of a sandbox: created or patched; kopf watches StatefulSets and Pods of ours.
    ("apps", "statefulsets", ("list", "watch", *_WRITE)),
    ("", "services", _WRITE),
    ("", "persistentvolumeclaims", _WRITE),
    # Token Secrets are only created: the operator never reads Secrets (no get/list/watch) or
    # rewrites them, so it cannot read other workloads' Secrets.
    ("", "secrets", ("create",)),
    ("networking.k8s.io", "networkpolicies", _WRITE),
    ("networking.k8s.io", "ingresses", _WRITE),
    ("gateway.networking.k8s.io", "httproutes", _WRITE),
    # Pod state explains a sandbox's conditions (Pending for lack of GPUs, node, restarts).
    ("", "pods", ("list", "watch")),
    # The accounting loop (controller/loop_runner.py) indexes the agents' reports, budgets, prices
    # and namespace labels (team, cost centre), and writes budget status.
    (GROUP, "gpunodereports", ("list", "watch")),
    (GROUP, "computebudgets", ("list", "watch")),
    (GROUP, "computebudgets/status", ("patch",)),
    (GROUP, "ratecards", ("list", "watch")),
    ("", "namespaces", ("list", "watch")),
]

# Leader election of the accounting loop (controller/leader.py): a namespaced Role in the
# release namespace only, so the operator cannot touch other components' Leases (kube-system's
# controller-manager and scheduler elect theirs the same way). `update` is a PUT with the
# Lease's resourceVersion: the compare-and-swap that makes two candidates never both win.
LEADER_ELECTION_RULES: list[Rule] = [
    ("coordination.k8s.io", "leases", ("get", "create", "update")),
]

# Only with `operator.peering.enabled` (HA): kopf watches its ClusterKopfPeering and patches
# its own entry in it.
PEERING_RULES: list[Rule] = [
    ("kopf.dev", "clusterkopfpeerings", ("list", "watch", "patch")),
]

# Only when the operator (kopf's `settings.admission.managed`) owns the webhook configurations,
# i.e. `webhook.managedByOperator: true`; by default the chart creates them. kopf creates each
# (409 if there) and patches its webhooks in; it never reads them.
WEBHOOK_MANAGEMENT_RULES: list[Rule] = [
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", _WRITE),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", _WRITE),
]

# The agent (sandboxer.metering.publisher.CALLS) lists the pods on its node and writes its node's
# report: a status merge-patch, and a create when the report is missing. RBAC cannot say "only
# pods on my node" for a ClusterRole: the list uses a spec.nodeName field selector, and the
# kubelet socket it reads is only its own node's. Likewise it cannot say "only my node's
# GPUNodeReport"; resourceNames cannot be templated per DaemonSet pod.
AGENT_RULES: list[Rule] = [
    ("", "pods", ("list",)),
    (GROUP, "gpunodereports", ("create",)),
    (GROUP, "gpunodereports/status", ("patch",)),
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
    "leaderElection": LEADER_ELECTION_RULES,
    "peering": PEERING_RULES,
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
