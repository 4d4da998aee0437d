"""Which children a sandbox has and how each is kept in step (create once, or patch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.manifests.exposure import build_exposure
from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import POD_ANNOTATIONS
from sandboxer.manifests.networkpolicy import build_network_policy
from sandboxer.manifests.secret import build_secret, sandbox_token
from sandboxer.manifests.service import build_service
from sandboxer.manifests.statefulset import build_statefulset
from sandboxer.manifests.storage import build_pvc, pvc_resize_patch


@dataclass(frozen=True)
class Child:
    obj: dict[str, Any]
    # Merge patch for an existing object (None: never rewritten, e.g. the token Secret).
    patch: dict[str, Any] | None
    # Whether a spec update of the sandbox can change it (only these are patched on update).
    follows_spec: bool = False


def desired_children(
    sandbox: Sandbox,
    cls: SandboxClassSpec,
    ingress_namespaces: Sequence[str],
    token_key: bytes | None = None,
    operator_namespace: str | None = None,
) -> list[Child]:
    """The children in creation order: the Secret and PVC exist before the pod needs them."""
    sts = build_statefulset(sandbox, cls)
    svc = build_service(sandbox)
    netpol = build_network_policy(sandbox, ingress_namespaces, operator_namespace)
    children = [
        Child(build_secret(sandbox, sandbox_token(sandbox, token_key)), None),
        Child(build_pvc(sandbox, cls), pvc_resize_patch(sandbox, cls), follows_spec=True),
        Child(svc, {"metadata": {"labels": svc["metadata"]["labels"]}, "spec": svc["spec"]}),
        Child(netpol, {"spec": netpol["spec"]}),
        Child(
            sts,
            {
                "metadata": {"labels": sts["metadata"]["labels"]},
                "spec": {"replicas": sts["spec"]["replicas"], "template": _template_patch(sts)},
            },
            follows_spec=True,
        ),
    ]
    exposure = build_exposure(sandbox, cls)
    if exposure is not None:
        children.append(Child(exposure, {"spec": exposure["spec"]}))
    return children


def _template_patch(sts: dict[str, Any]) -> dict[str, Any]:
    """The pod template as a merge patch: a copied annotation the sandbox dropped is removed."""
    template = sts["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    dropped = {k: None for k in POD_ANNOTATIONS if k not in annotations}
    if not dropped:
        return template  # type: ignore[no-any-return]
    return {
        **template,
        "metadata": {**template["metadata"], "annotations": {**annotations, **dropped}},
    }
