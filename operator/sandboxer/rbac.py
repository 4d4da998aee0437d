"""Every (apiGroup, resource, verbs) the operator uses: the chart's ClusterRole is generated
from this list, so the operator holds exactly the RBAC it needs (DESIGN.md invariant 6).

Keep it in step with `controller/kube.py` (our own calls) and kopf's needs (watching, events,
peering, managed webhook configurations).
"""

from __future__ import annotations

OPERATOR_RULES: list[tuple[str, str, tuple[str, ...]]] = [
    # Our custom resources: watched by kopf, patched for kopf's progress and our status.
    ("sandboxer.io", "experimentsandboxes", ("get", "list", "watch", "patch", "update")),
    ("sandboxer.io", "experimentsandboxes/status", ("get", "patch", "update")),
    ("sandboxer.io", "sandboxclasses", ("get", "list", "watch")),
    # Children of a sandbox (controller/kube.py): created, patched; deleted by garbage collection.
    ("apps", "statefulsets", ("get", "list", "watch", "create", "patch")),
    ("", "pods", ("get", "list", "watch")),
    ("", "services", ("get", "create", "patch")),
    ("", "persistentvolumeclaims", ("get", "create", "patch")),
    ("", "secrets", ("get", "create")),
    ("networking.k8s.io", "networkpolicies", ("get", "create", "patch")),
    ("networking.k8s.io", "ingresses", ("get", "create", "patch")),
    ("gateway.networking.k8s.io", "httproutes", ("get", "create", "patch")),
    # kopf: events for decisions, namespaces for --namespace patterns, CRD discovery.
    ("", "events", ("create",)),
    ("events.k8s.io", "events", ("create",)),
    ("", "namespaces", ("get", "list", "watch")),
    ("apiextensions.k8s.io", "customresourcedefinitions", ("get", "list", "watch")),
    # kopf peering for HA (--peering).
    ("kopf.dev", "clusterkopfpeerings", ("get", "list", "watch", "patch")),
    ("kopf.dev", "kopfpeerings", ("get", "list", "watch", "patch")),
    # kopf-managed admission webhook configurations (settings.admission.managed).
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        ("get", "list", "watch", "create", "patch"),
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        ("get", "list", "watch", "create", "patch"),
    ),
]
