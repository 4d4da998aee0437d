"""The ClusterIP Service in front of the notebook (also the StatefulSet's serviceName)."""

from __future__ import annotations

from typing import Any

from sandboxer.manifests.inputs import NOTEBOOK_PORT, Sandbox
from sandboxer.manifests.labels import sandbox_labels, selector_labels


def build_service(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": sandbox.name,
            "namespace": sandbox.namespace,
            "labels": sandbox_labels(sandbox.name, sandbox.spec.owner, sandbox.spec.class_),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(sandbox.name),
            "ports": [
                {"name": "http", "port": NOTEBOOK_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def service_url(sandbox: Sandbox) -> str:
    """The in-cluster address of the notebook (the token is in the sandbox's Secret)."""
    return f"http://{sandbox.name}.{sandbox.namespace}.svc:{NOTEBOOK_PORT}/"
