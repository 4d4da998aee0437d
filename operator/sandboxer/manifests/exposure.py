"""Optional publication of the notebook: an Ingress or a Gateway API HTTPRoute per class."""

from __future__ import annotations

from typing import Any

from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.manifests.inputs import NOTEBOOK_PORT, Sandbox
from sandboxer.manifests.labels import sandbox_labels


def exposure_host(sandbox: Sandbox, cls: SandboxClassSpec) -> str | None:
    template = cls.expose.host
    if cls.expose.kind == "None" or not template:
        return None
    return template.replace("{name}", sandbox.name).replace("{namespace}", sandbox.namespace)


def build_exposure(sandbox: Sandbox, cls: SandboxClassSpec) -> dict[str, Any] | None:
    """The Ingress or HTTPRoute for this sandbox, or None when the class publishes nothing."""
    expose = cls.expose
    if expose.kind == "None":
        return None
    host = exposure_host(sandbox, cls)
    meta = {
        "name": sandbox.name,
        "namespace": sandbox.namespace,
        "labels": sandbox_labels(sandbox.name, sandbox.spec.owner, sandbox.spec.class_),
    }
    if expose.kind == "Ingress":
        rule: dict[str, Any] = {
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": sandbox.name, "port": {"name": "http"}}},
                    }
                ]
            }
        }
        if host:
            rule["host"] = host
        spec: dict[str, Any] = {"rules": [rule]}
        if expose.ingress_class_name:
            spec["ingressClassName"] = expose.ingress_class_name
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta,
            "spec": spec,
        }
    parent: dict[str, Any] = {"name": expose.gateway_name or "default"}
    if expose.gateway_namespace:
        parent["namespace"] = expose.gateway_namespace
    route: dict[str, Any] = {
        "parentRefs": [parent],
        "rules": [{"backendRefs": [{"name": sandbox.name, "port": NOTEBOOK_PORT}]}],
    }
    if host:
        route["hostnames"] = [host]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": route,
    }


def exposure_url(sandbox: Sandbox, cls: SandboxClassSpec) -> str | None:
    host = exposure_host(sandbox, cls)
    return f"https://{host}/" if host else None
