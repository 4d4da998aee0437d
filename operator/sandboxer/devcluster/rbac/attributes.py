"""Request attributes from method, path and query, as kube-apiserver's RequestInfoFactory derives
them, and the 403 it answers when the authorizer says no."""

from __future__ import annotations

from collections.abc import Mapping

from sandboxer.devcluster.errors import ApiError
from sandboxer.devcluster.rbac.rules import Attributes

_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# Subresources of a namespace itself: /api/v1/namespaces/NS/status is the namespace's status.
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def _name_from_field_selector(selector: str) -> str:
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name" and value and not value.startswith("="):
            return value.strip()
    return ""


def from_request(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    parts = [p for p in path.split("/") if p]
    lowered = method.lower()
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:  # /api, /apis, /apis/G[/V], /healthz, /openapi/...: non-resource requests
        return Attributes(verb=lowered, resource_request=False, path=path or "/")
    verb = _VERBS.get(method.upper(), lowered)
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in ("true", "1") else "list"
        name = _name_from_field_selector(query.get("fieldSelector", ""))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, True, group, resource, subresource, namespace, name, path)


def forbidden(user: str, attrs: Attributes, reason: str = "") -> ApiError:
    """kube-apiserver's 403: `<resource>[.<group>] ["<name>"] is forbidden: User ... cannot ...`."""
    if not attrs.resource_request:
        message = f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"'
        return ApiError(403, "Forbidden", message + (f": {reason}" if reason else ""), {})
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    detail = (
        f'User "{user}" cannot {attrs.verb} resource "{attrs.combined}" in API group '
        f'"{attrs.api_group}" {where}'
    )
    if reason:
        detail += f": {reason}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details = {"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource}
    details = {k: v for k, v in details.items() if v}  # as Go's omitempty writes them
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {detail}", details)
