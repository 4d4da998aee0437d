"""The StatefulSet running JupyterLab: one replica, or zero while suspended."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.manifests import inputs
from sandboxer.manifests.inputs import HOME, NOTEBOOK_PORT, Sandbox
from sandboxer.manifests.labels import (
    KUEUE_QUEUE_LABEL,
    SPEC_HASH_ANNOTATION,
    sandbox_labels,
    selector_labels,
)
from sandboxer.manifests.secret import TOKEN_KEY, secret_name
from sandboxer.manifests.storage import pvc_name

# The docker-stacks user jovyan (uid 1000) and group users (gid 100) that those images expect.
RUN_AS_USER = 1000
RUN_AS_GROUP = 100
# Environment names the operator sets; users may not override them through spec.env.
RESERVED_ENV = frozenset({"JUPYTER_TOKEN", "HOME", "JUPYTER_PORT", "NVIDIA_VISIBLE_DEVICES"})


def spec_hash(sandbox: Sandbox, cls: SandboxClassSpec) -> str:
    """Hash of what should roll the pod (GPUs, resources, image, env); goes on the pod template.

    The values are resolved first, so a class default change rolls pods as well.
    """
    parts = {
        "gpus": sandbox.spec.gpus,
        "gpuResource": cls.gpu.resource_name,
        "cpu": inputs.cpu(sandbox, cls),
        "memory": inputs.memory(sandbox, cls),
        "image": inputs.image(sandbox, cls),
        "env": [e.dump() for e in sandbox.spec.env],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _resources(sandbox: Sandbox, cls: SandboxClassSpec) -> dict[str, Any]:
    requests: dict[str, Any] = {
        "cpu": inputs.cpu(sandbox, cls),
        "memory": inputs.memory(sandbox, cls),
    }
    # Memory is limited (the node cannot reclaim it); CPU is not, so idle cores can be borrowed.
    limits: dict[str, Any] = {"memory": requests["memory"]}
    if sandbox.spec.gpus:
        # Extended resources must have request == limit.
        requests[cls.gpu.resource_name] = str(sandbox.spec.gpus)
        limits[cls.gpu.resource_name] = str(sandbox.spec.gpus)
    return {"requests": requests, "limits": limits}


def container_security_context() -> dict[str, Any]:
    """Pod Security Standards "restricted", plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(sandbox: Sandbox, cls: SandboxClassSpec) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        # Jupyter Server reads its token from JUPYTER_TOKEN; the value never appears in the spec.
        {
            "name": "JUPYTER_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": secret_name(sandbox), "key": TOKEN_KEY}},
        },
        {"name": "HOME", "value": HOME},
        *[e.dump() for e in sandbox.spec.env if e.name not in RESERVED_ENV],
    ]
    return {
        "name": "notebook",
        "image": inputs.image(sandbox, cls),
        "imagePullPolicy": "IfNotPresent",
        "command": ["jupyter", "lab"],
        "args": [
            "--ServerApp.ip=0.0.0.0",
            f"--ServerApp.port={NOTEBOOK_PORT}",
            "--ServerApp.base_url=/",
            f"--ServerApp.root_dir={HOME}",
            "--ServerApp.open_browser=False",
        ],
        "env": env,
        "ports": [{"name": "http", "containerPort": NOTEBOOK_PORT, "protocol": "TCP"}],
        "resources": _resources(sandbox, cls),
        # /api answers 200 without a token once the server is up.
        "readinessProbe": {
            "httpGet": {"path": "/api", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "workspace", "mountPath": HOME},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, not the host's /tmp
        ],
    }


def _pod_spec(sandbox: Sandbox, cls: SandboxClassSpec) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_GROUP,
            "fsGroup": RUN_AS_GROUP,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(sandbox, cls)],
        "volumes": [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": pvc_name(sandbox)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}},
        ],
    }
    if cls.node_selector:
        spec["nodeSelector"] = dict(cls.node_selector)
    if cls.tolerations:
        spec["tolerations"] = [t.dump() for t in cls.tolerations]
    if cls.priority_class_name:
        spec["priorityClassName"] = cls.priority_class_name
    if cls.scheduler_name:
        spec["schedulerName"] = cls.scheduler_name
    return spec


def build_statefulset(sandbox: Sandbox, cls: SandboxClassSpec) -> dict[str, Any]:
    labels = sandbox_labels(sandbox.name, sandbox.spec.owner, sandbox.spec.class_)
    if cls.queue_name:
        labels[KUEUE_QUEUE_LABEL] = cls.queue_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": sandbox.name, "namespace": sandbox.namespace, "labels": labels},
        "spec": {
            "replicas": 0 if sandbox.spec.suspend else 1,
            "serviceName": sandbox.name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector_labels(sandbox.name)},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {
                        SPEC_HASH_ANNOTATION: spec_hash(sandbox, cls),
                        **dict(sandbox.pod_annotations),
                    },
                },
                "spec": _pod_spec(sandbox, cls),
            },
        },
    }
