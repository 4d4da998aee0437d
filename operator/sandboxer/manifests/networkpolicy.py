"""NetworkPolicy: the notebook accepts traffic only from the ingress controller's namespaces
(configurable) and the operator's namespace (the loop reads each notebook's /api/status): not
from other tenants, and not from neighbours' pods in its own namespace, so a teammate's notebook
cannot try tokens against yours. `kubectl port-forward` is unaffected (the kubelet enters the
pod's network namespace itself)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sandboxer.manifests.inputs import NOTEBOOK_PORT, Sandbox
from sandboxer.manifests.labels import sandbox_labels, selector_labels

DEFAULT_INGRESS_NAMESPACES = ("ingress-nginx",)


def build_network_policy(
    sandbox: Sandbox,
    ingress_namespaces: Sequence[str] = DEFAULT_INGRESS_NAMESPACES,
    operator_namespace: str | None = None,
) -> dict[str, Any]:
    peers: list[dict[str, Any]] = []
    admitted = list(ingress_namespaces)
    if operator_namespace and operator_namespace not in admitted:
        admitted.append(operator_namespace)
    peers += [
        # kubernetes.io/metadata.name is set on every namespace by the API server (1.22+).
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
        for ns in admitted
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": sandbox.name,
            "namespace": sandbox.namespace,
            "labels": sandbox_labels(sandbox.name, sandbox.spec.owner, sandbox.spec.class_),
        },
        "spec": {
            "podSelector": {"matchLabels": selector_labels(sandbox.name)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": NOTEBOOK_PORT}]}],
        },
    }
