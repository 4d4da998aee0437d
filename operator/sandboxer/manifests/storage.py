"""The workspace volume: a standalone PersistentVolumeClaim owned by the sandbox.

Why not a volumeClaimTemplate: the StatefulSet controller creates those claims itself, owns them
through nothing (they outlive the sandbox unless a retention policy says otherwise) and never
resizes them, because the template is immutable. A standalone claim owned by the sandbox stays
while the StatefulSet is at zero replicas, grows with a plain patch of its size, and goes with
the sandbox through garbage collection.
"""

from __future__ import annotations

from typing import Any

from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.manifests import inputs
from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import sandbox_labels


def pvc_name(sandbox: Sandbox) -> str:
    return f"{sandbox.name}-workspace"


def build_pvc(sandbox: Sandbox, cls: SandboxClassSpec) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": inputs.storage(sandbox, cls)}},
    }
    if cls.storage_class_name:
        spec["storageClassName"] = cls.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": pvc_name(sandbox),
            "namespace": sandbox.namespace,
            "labels": sandbox_labels(sandbox.name, sandbox.spec.owner, sandbox.spec.class_),
        },
        "spec": spec,
    }


def pvc_resize_patch(sandbox: Sandbox, cls: SandboxClassSpec) -> dict[str, Any]:
    """The only change ever made to an existing claim: its requested size (growth only;
    the admission webhook refuses shrinking)."""
    return {"spec": {"resources": {"requests": {"storage": inputs.storage(sandbox, cls)}}}}
