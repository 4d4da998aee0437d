"""Labels and annotations: app.kubernetes.io/* plus our own sandboxer.io/* keys."""

from __future__ import annotations

import hashlib
import re

SANDBOX_LABEL = "sandboxer.io/sandbox"
OWNER_LABEL = "sandboxer.io/owner"
CLASS_LABEL = "sandboxer.io/class"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SPEC_HASH_ANNOTATION = "sandboxer.io/spec-hash"
OWNER_GROUPS_ANNOTATION = "sandboxer.io/owner-groups"  # the creator's groups, stamped at admission
# Who checked the sandbox before it first ran: "webhook" (stamped on CREATE by the mutating
# webhook, overwriting what the user sent) or "operator" (the webhooks were bypassed).
ADMISSION_ANNOTATION = "sandboxer.io/admission"
# Drives the playground's simulated kubelet (Running | CrashLoopBackOff | ImagePullBackOff). Set on
# the sandbox and copied to its pod template: a kubelet sees only the pod. Inert on real nodes.
CONTAINER_START_ANNOTATION = "sim.sandboxer.io/container-start"
POD_ANNOTATIONS = (CONTAINER_START_ANNOTATION,)  # sandbox annotations the pod template carries
TEAM_LABEL = "sandboxer.io/team"  # on namespaces: the team their usage is charged to
COST_CENTER_LABEL = "sandboxer.io/cost-center"  # on namespaces
APP_NAME = "sandboxer-notebook"
MANAGED_BY = "sandboxer"

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_UNSAFE = re.compile(r"[^-A-Za-z0-9_.]+")


def label_safe(value: str) -> str:
    """A valid label value for any string (user names hold '@' and ':').

    Values that needed changes get a short hash suffix, so "a@b" and "a.b" stay distinct.
    """
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    cleaned = _UNSAFE.sub("-", value).strip("-_.")[:54].rstrip("-_.")
    return f"{cleaned}-{digest}" if cleaned else digest


def selector_labels(sandbox: str) -> dict[str, str]:
    """The immutable selector of the StatefulSet, Service and NetworkPolicy."""
    return {"app.kubernetes.io/name": APP_NAME, SANDBOX_LABEL: sandbox}


def sandbox_labels(sandbox: str, owner: str | None, class_name: str) -> dict[str, str]:
    labels = {
        **selector_labels(sandbox),
        "app.kubernetes.io/instance": sandbox,
        "app.kubernetes.io/component": "notebook",
        "app.kubernetes.io/part-of": "sandboxer",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CLASS_LABEL: class_name,
    }
    if owner:
        labels[OWNER_LABEL] = label_safe(owner)
    return labels
