"""The RBAC authorizer of the embedded API: bindings indexed by subject, rules resolved per
request, and the escalation check on writes of roles and bindings.

As in kube-apiserver, `system:masters` is allowed everything before RBAC is asked, a request is
allowed when any rule of any binding that names the user (or one of its groups) allows it, and
ClusterRoleBindings apply in every namespace while RoleBindings apply in their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sandboxer.devcluster.errors import ApiError
from sandboxer.devcluster.rbac import rules as rbac_rules
from sandboxer.devcluster.rbac.attributes import forbidden
from sandboxer.devcluster.rbac.rules import Attributes, Rule
from sandboxer.devcluster.store import ResKey, Store

GROUP = "rbac.authorization.k8s.io"
ROLES: ResKey = (GROUP, "v1", "roles")
CLUSTER_ROLES: ResKey = (GROUP, "v1", "clusterroles")
ROLE_BINDINGS: ResKey = (GROUP, "v1", "rolebindings")
CLUSTER_ROLE_BINDINGS: ResKey = (GROUP, "v1", "clusterrolebindings")
MASTERS = "system:masters"
BindingRef = tuple[ResKey, str, str]  # resource, namespace ("" for cluster bindings), name


class Authorizer:
    def __init__(self, store: Store) -> None:
        self.store = store
        # ("user"|"group", name) -> bindings that name it, in the order they were made.
        self._by_subject: dict[tuple[str, str], dict[BindingRef, None]] = {}
        store.listeners.append(self._index)

    def _index(self, kind: str, res: ResKey, obj: dict[str, Any], old: Any) -> None:
        if res not in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
            return
        meta = obj["metadata"]
        ref = (res, meta.get("namespace", ""), meta["name"])
        for previous in (old, obj if kind == "DELETED" else None):
            for key in _subject_keys(previous, ref[1]):
                self._by_subject.get(key, {}).pop(ref, None)
        if kind != "DELETED":
            for key in _subject_keys(obj, ref[1]):
                self._by_subject.setdefault(key, {})[ref] = None

    # -- rules of a user -----------------------------------------------------------------------

    def _bindings(self, name: str, groups: tuple[str, ...], namespace: str) -> list[BindingRef]:
        refs: dict[BindingRef, None] = {}
        for key in rbac_rules.user_keys(name, groups):
            for ref in self._by_subject.get(key, {}):
                if ref[0] == CLUSTER_ROLE_BINDINGS or (namespace and ref[1] == namespace):
                    refs[ref] = None
        # Cluster-wide grants first, as kube-apiserver visits them.
        return sorted(refs, key=lambda r: r[0] != CLUSTER_ROLE_BINDINGS)

    def role_rules(self, role_ref: Mapping[str, Any], namespace: str) -> list[Rule]:
        """The rules a roleRef names; ApiError 404 when the role does not exist."""
        kind, name = role_ref.get("kind"), str(role_ref.get("name") or "")
        if kind == "ClusterRole":
            role = self.store.get(CLUSTER_ROLES, "", name)
            plural = "clusterroles"
        else:
            role = self.store.get(ROLES, namespace, name)
            plural = "roles"
        if role is None:
            raise ApiError(
                404,
                "NotFound",
                f'{plural}.{GROUP} "{name}" not found',
                {"name": name, "group": GROUP, "kind": plural},
            )
        return [r for r in role.get("rules") or [] if isinstance(r, Mapping)]

    def rules_for(
        self, name: str, groups: tuple[str, ...], namespace: str
    ) -> Iterator[tuple[list[Rule] | None, str]]:
        """(rules, "") per binding of the user in `namespace`, or (None, error) for a binding
        whose role is missing."""
        for res, binding_ns, binding_name in self._bindings(name, groups, namespace):
            binding = self.store.get(res, binding_ns, binding_name) or {}
            try:
                yield self.role_rules(binding.get("roleRef") or {}, binding_ns), ""
            except ApiError as exc:
                yield None, exc.message

    # -- decisions -----------------------------------------------------------------------------

    def allowed(self, name: str, groups: tuple[str, ...], attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason names roles that bindings point at but do not exist."""
        if MASTERS in groups:
            return True, ""
        errors = []
        for found, error in self.rules_for(name, groups, attrs.namespace):
            if found is None:
                errors.append(error)
            elif any(rbac_rules.allows(rule, attrs) for rule in found):
                return True, ""
        return False, f"RBAC: [{', '.join(errors)}]" if errors else ""

    def authorize(self, name: str, groups: tuple[str, ...], attrs: Attributes) -> None:
        allowed, reason = self.allowed(name, groups, attrs)
        if not allowed:
            raise forbidden(name, attrs, reason)

    # -- escalation: writing a role or binding grants at most what the writer holds -----------

    def check_escalation(
        self,
        res: ResKey,
        namespace: str,
        obj: Mapping[str, Any],
        name: str,
        groups: tuple[str, ...],
    ) -> None:
        """Refuse a role that grants, or a binding to a role that holds, what the writer lacks
        (unless it may `escalate` that role or `bind` it)."""
        if MASTERS in groups or res not in _ESCALATION:
            return
        plural = res[2]
        object_name = str((obj.get("metadata") or {}).get("name") or "")
        scope = namespace if plural in ("roles", "rolebindings") else ""
        if plural in ("roles", "clusterroles"):
            escalate = Attributes("escalate", True, GROUP, plural, "", scope, object_name)
            if self.allowed(name, groups, escalate)[0]:
                return
            wanted = [r for r in obj.get("rules") or [] if isinstance(r, Mapping)]
        else:
            role_ref = obj.get("roleRef") or {}
            ref_plural = "clusterroles" if role_ref.get("kind") == "ClusterRole" else "roles"
            bind = Attributes("bind", True, GROUP, ref_plural, "", scope, role_ref.get("name", ""))
            if self.allowed(name, groups, bind)[0]:
                return
            wanted = self.role_rules(role_ref, scope)
        held = [r for found, _ in self.rules_for(name, groups, scope) for r in found or ()]
        missing = rbac_rules.uncovered(held, wanted)
        if missing:
            listed = "\n".join(sorted({rbac_rules.compact(m) for m in missing}))
            quoted = " ".join(f'"{g}"' for g in groups)
            raise ApiError(
                403,
                "Forbidden",
                f'{plural}.{GROUP} "{object_name}" is forbidden: user "{name}" '
                f"(groups=[{quoted}]) is attempting to grant RBAC permissions not currently "
                f"held:\n{listed}",
                {"name": object_name, "group": GROUP, "kind": plural},
            )


_ESCALATION = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)


def _subject_keys(binding: Mapping[str, Any] | None, namespace: str) -> list[tuple[str, str]]:
    if not binding:
        return []
    subjects = binding.get("subjects") or []
    keys = (rbac_rules.subject_key(s, namespace) for s in subjects if isinstance(s, Mapping))
    return [k for k in keys if k is not None]
