"""RBAC rule matching as kube-apiserver's RBAC authorizer does it (pure functions).

`allows` decides one request against one PolicyRule; `uncovered` is the escalation check's
"does the creator hold every permission it grants" (k8s `validation.Covers`); `binds` decides
whether a binding's subject is a user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Rule = Mapping[str, Any]  # a PolicyRule as stored: apiGroups, resources, verbs, ...
ALL = "*"


@dataclass(frozen=True)
class Attributes:
    """What the authorizer sees of a request (k8s `authorizer.Attributes`)."""

    verb: str
    resource_request: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def combined(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _strings(rule: Rule, key: str) -> Sequence[str]:
    value = rule.get(key) or ()
    return [str(v) for v in value] if isinstance(value, list | tuple) else ()


def _resource_matches(rule: Rule, combined: str, subresource: str) -> bool:
    for resource in _strings(rule, "resources"):
        if resource in (ALL, combined):
            return True
        # "*/status" grants the status subresource of every resource.
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def _url_matches(pattern: str, path: str) -> bool:
    if pattern in (ALL, path):
        return True
    return pattern.endswith("*") and path.startswith(pattern[:-1])


def allows(rule: Rule, attrs: Attributes) -> bool:
    verbs = _strings(rule, "verbs")
    if ALL not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return any(_url_matches(u, attrs.path) for u in _strings(rule, "nonResourceURLs"))
    groups = _strings(rule, "apiGroups")
    if ALL not in groups and attrs.api_group not in groups:
        return False
    if not _resource_matches(rule, attrs.combined, attrs.subresource):
        return False
    names = _strings(rule, "resourceNames")
    return not names or attrs.name in names


# -- escalation: does one set of rules hold every permission another grants? --------------------


def _covers_resources(owner: Sequence[str], wanted: str) -> bool:
    if ALL in owner or wanted in owner:
        return True
    _, slash, sub = wanted.partition("/")
    return bool(slash) and f"*/{sub}" in owner


def _covers_url(owner: Sequence[str], wanted: str) -> bool:
    return any(_url_matches(pattern, wanted) for pattern in owner)


def _atoms(rule: Rule) -> Iterable[dict[str, Any]]:
    """One single-verb, single-resource (single-name) rule per permission that `rule` grants."""
    for verb in _strings(rule, "verbs"):
        for url in _strings(rule, "nonResourceURLs"):
            yield {"verbs": [verb], "nonResourceURLs": [url]}
        for group in _strings(rule, "apiGroups"):
            for resource in _strings(rule, "resources"):
                names = _strings(rule, "resourceNames") or [""]
                for name in names:
                    atom: dict[str, Any] = {
                        "apiGroups": [group],
                        "resources": [resource],
                        "verbs": [verb],
                    }
                    if name:
                        atom["resourceNames"] = [name]
                    yield atom


def _atom_covered(owner: Rule, atom: Rule) -> bool:
    verbs = _strings(owner, "verbs")
    if ALL not in verbs and atom["verbs"][0] not in verbs:
        return False
    if "nonResourceURLs" in atom:
        return _covers_url(_strings(owner, "nonResourceURLs"), atom["nonResourceURLs"][0])
    groups = _strings(owner, "apiGroups")
    if ALL not in groups and atom["apiGroups"][0] not in groups:
        return False
    if not _covers_resources(_strings(owner, "resources"), atom["resources"][0]):
        return False
    names = _strings(owner, "resourceNames")
    wanted = _strings(atom, "resourceNames")
    return not names or (bool(wanted) and wanted[0] in names)


def uncovered(owner: Sequence[Rule], wanted: Iterable[Rule]) -> list[dict[str, Any]]:
    """The permissions in `wanted` that no rule in `owner` holds (empty: no escalation)."""
    return [
        atom
        for rule in wanted
        for atom in _atoms(rule)
        if not any(_atom_covered(o, atom) for o in owner)
    ]


def compact(rule: Rule) -> str:
    """A rule as kube-apiserver prints a missing permission: `{APIGroups:["x"], ...}`."""
    parts = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("resourceNames", "ResourceNames"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("verbs", "Verbs"),
    ):
        if key in rule:
            parts.append(f"{label}:[{' '.join(json.dumps(str(v)) for v in rule[key])}]")
    return "{" + ", ".join(parts) + "}"


# -- subjects ------------------------------------------------------------------------------------

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def subject_key(subject: Mapping[str, Any], binding_namespace: str) -> tuple[str, str] | None:
    """("user"|"group", name) the subject stands for; service accounts are users by name."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return ("user", name)
    if kind == "Group":
        return ("group", name)
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return ("user", f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
    return None


def user_keys(name: str, groups: Iterable[str]) -> list[tuple[str, str]]:
    return [("user", name), *(("group", g) for g in groups)]
