"""The resource types the embedded API serves: core kinds built in, custom kinds from CRDs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale_subresource: bool = False
    schema: dict[str, Any] | None = None  # openAPIV3Schema, for custom kinds
    columns: tuple[dict[str, Any], ...] = ()  # additionalPrinterColumns
    crd_name: str | None = None
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """`plural.group` as error messages name it (`experimentsandboxes.sandboxer.io`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def base_path(self, namespace: str | None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


def _core(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    status: bool = False,
    scale: bool = False,
) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, short, categories, status, scale)


# The core kinds our operator, kopf, kubectl and helm touch, with the real short names.
CORE_TYPES: tuple[ResourceType, ...] = (
    _core("", "v1", "namespaces", "Namespace", False, ("ns",), status=True),
    _core("", "v1", "pods", "Pod", True, ("po",), ("all",), status=True),
    _core("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _core("", "v1", "secrets", "Secret", True),
    _core("", "v1", "services", "Service", True, ("svc",), ("all",), status=True),
    _core("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    _core("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), status=True),
    _core("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), status=True),
    _core("", "v1", "nodes", "Node", False, ("no",), status=True),
    _core("", "v1", "events", "Event", True, ("ev",)),
    _core("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _core("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), status=True),
    _core("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    _core("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("all",), True, True),
    _core("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("all",), True, True),
    _core("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("all",), True),
    _core("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    _core("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    _core("coordination.k8s.io", "v1", "leases", "Lease", True),
    _core("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    _core("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",)),
    _core("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    _core("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _core("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _core("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _core("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _core(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    _core(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    _core(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        status=True,
    ),
)

CRD_KEY = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                scale_subresource="scale" in subresources,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                columns=tuple(version.get("additionalPrinterColumns") or ()),
                crd_name=(crd.get("metadata") or {}).get("name"),
            )
        )
    return out


@dataclass
class Registry:
    """Resource types by (group, version, plural); discovery reads it in insertion order."""

    types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    revision: int = 0  # bumped on every change, so discovery/OpenAPI hashes change too

    @classmethod
    def with_core(cls) -> Registry:
        registry = cls()
        for rt in CORE_TYPES:
            registry.add(rt)
        return registry

    def add(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt
        self.revision += 1

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        gone = [rt for rt in self.types.values() if rt.crd_name == crd_name]
        for rt in gone:
            del self.types[rt.key]
        self.revision += 1
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self.types.values()))

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out


def established_status(crd: dict[str, Any], when: str) -> dict[str, Any]:
    """The status a real server gives a CRD whose names it accepted: kubectl waits for it."""
    return {
        "acceptedNames": (crd.get("spec") or {}).get("names") or {},
        "storedVersions": [v["name"] for v in crd["spec"].get("versions") or []],
        "conditions": [
            {"type": t, "status": "True", "reason": r, "lastTransitionTime": when}
            for t, r in (("NamesAccepted", "NoConflicts"), ("Established", "InitialNamesAccepted"))
        ],
    }
