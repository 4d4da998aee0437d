"""The API server's semantics, independent of HTTP: create, update, patch, delete, GC.

`ApiServer` owns the registry (what kinds exist), the store (what objects exist), admission and
garbage collection. The HTTP layer (`server.py`) and the simulated controllers call it; its
coroutines only await on admission webhooks, so each commit is atomic in the event loop.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sandboxer.devcluster import objects
from sandboxer.devcluster.auth import SYSTEM, User
from sandboxer.devcluster.collector import NAMESPACES, GarbageCollector
from sandboxer.devcluster.endpoints import PodEndpoints
from sandboxer.devcluster.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    not_found,
)
from sandboxer.devcluster.patching import APPLY, apply_patch
from sandboxer.devcluster.rbac.authorizer import Authorizer
from sandboxer.devcluster.resources import (
    CRD_KEY,
    Registry,
    ResourceType,
    established_status,
    from_crd,
)
from sandboxer.devcluster.store import ResKey, Store
from sandboxer.devcluster.webhooks import AdmissionRequest, WebhookDispatcher

log = logging.getLogger(__name__)

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ApiServer:
    def __init__(self, clock: Clock = _utcnow) -> None:
        self.registry = Registry.with_core()
        self.store = Store()
        self.clock = clock
        self.webhooks = WebhookDispatcher(self.store.iter, self._namespace_labels)
        self.rbac = Authorizer(self.store)  # HttpApi asks it; _admit checks role escalation
        self._uids: dict[str, tuple[ResKey, str, str]] = {}
        self.collector = GarbageCollector(self)
        # Loopback addresses of simulated pods' ports (devcluster/endpoints.py).
        self.endpoints = PodEndpoints()
        self._schemas = objects.CompiledSchemas()
        self.store.listeners.append(self._track)
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.put_system(NAMESPACES, {"metadata": {"name": name}, "status": {"phase": "Active"}})

    # -- lookups -----------------------------------------------------------------------------

    def resource(self, key: ResKey) -> ResourceType:
        rt = self.registry.types.get(key)
        if rt is None:
            group, version, plural = key
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({plural}"
                f"{'.' + group if group else ''} {version})",
            )
        return rt

    def get(self, key: ResKey, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(key, namespace if self.resource(key).namespaced else "", name)

    def must_get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.plural, name, rt.group)
        return obj

    def iter(self, key: ResKey, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        return self.store.iter(key, namespace or None)

    def by_uid(self, uid: str) -> dict[str, Any] | None:
        where = self._uids.get(uid)
        return self.store.get(*where) if where else None

    def _namespace_labels(self, namespace: str) -> Mapping[str, str]:
        ns = self.store.get(NAMESPACES, "", namespace) or {}
        labels: dict[str, str] = dict((ns.get("metadata") or {}).get("labels") or {})
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels

    def _track(self, kind: str, res: ResKey, obj: dict[str, Any], old: Any) -> None:
        meta = obj["metadata"]
        if kind == "DELETED":
            self._uids.pop(meta.get("uid", ""), None)
        else:
            self._uids[meta["uid"]] = (res, meta.get("namespace", ""), meta["name"])

    # -- commit: the only place where objects get stored ---------------------------------------

    def commit(
        self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        meta = dict(new.get("metadata") or {})
        meta["resourceVersion"] = self.store.next_rv()
        if old is None:
            meta["uid"] = meta.get("uid") or objects.new_uid()
            meta["creationTimestamp"] = objects.now_rfc3339(self.clock())
            meta["generation"] = 1
        else:
            before = old["metadata"]
            for fixed in ("uid", "creationTimestamp", "deletionTimestamp"):
                if fixed in before:
                    meta[fixed] = before[fixed]
            generation = int(before.get("generation", 1))
            meta["generation"] = generation + (1 if objects.spec_changed(rt, new, old) else 0)
        new = {**new, "apiVersion": rt.api_version, "kind": rt.kind, "metadata": meta}
        if rt.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rt, new)  # the last finalizer is gone: the object goes now
            return new
        self.store.put(rt.key, new)
        if rt.key == CRD_KEY:
            self._register_crd(new)
        return new

    def put_system(self, key: ResKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object as a controller would, without admission (in-process)."""
        rt = self.resource(key)
        meta = obj.get("metadata") or {}
        old = self.store.get(key, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        return self.commit(rt, obj, old)

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        self.store.remove(rt.key, obj)
        meta = obj["metadata"]
        if rt.key == CRD_KEY:
            for gone in self.registry.remove_crd(meta["name"]):
                self.store.drop_resource(gone.key)
        if rt.key == NAMESPACES:
            return
        self.collector.schedule(meta["uid"])
        ns = meta.get("namespace")
        if ns:
            namespace = self.store.get(NAMESPACES, "", ns)
            if namespace and (namespace["metadata"].get("deletionTimestamp")):
                self.collector.finish_namespace(namespace)

    def _register_crd(self, crd: dict[str, Any]) -> None:
        for rt in from_crd(crd):
            self.registry.add(rt)
        if not (crd.get("status") or {}).get("conditions"):
            status = established_status(crd, objects.now_rfc3339(self.clock()))
            self.commit(self.resource(CRD_KEY), {**crd, "status": status}, crd)

    # -- verbs -------------------------------------------------------------------------------

    async def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        *,
        user: User = SYSTEM,
        strict: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        meta = dict(body.get("metadata") or {})
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            namespace = namespace or body_ns or "default"
            meta["namespace"] = namespace
            self._check_namespace(namespace)
        else:
            namespace = ""
            meta.pop("namespace", None)
        meta["name"] = objects.name_for_create(rt, meta)
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for server_owned in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
            meta.pop(server_owned, None)
        obj = {**body, "metadata": meta}
        if rt.schema is not None and rt.status_subresource:
            obj.pop("status", None)  # status is written through /status only
        if self.store.get(rt.key, namespace, meta["name"]) is not None:
            raise already_exists(rt.plural, meta["name"], rt.group)
        obj = await self._admit("CREATE", rt, namespace, obj, None, user, "", dry_run, strict)
        if self.store.get(rt.key, namespace, meta["name"]) is not None:
            raise already_exists(rt.plural, meta["name"], rt.group)
        if dry_run:
            return obj
        return self.commit(rt, obj, None)

    async def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        user: User = SYSTEM,
        strict: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        old = self.must_get(rt, namespace, name)
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({body_meta.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
        wanted_rv = body_meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        new = objects.scoped(rt, old, body, subresource)
        return await self._update(rt, namespace, old, new, user, subresource, dry_run, strict)

    async def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str = "",
        user: User = SYSTEM,
        strict: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        # Patches are re-applied to the latest object if it moved while webhooks were called.
        for _attempt in range(5):
            old = self.store.get(rt.key, namespace if rt.namespaced else "", name)
            if old is None:
                if content_type == APPLY and isinstance(patch, dict):
                    return await self.create(
                        rt, namespace, patch, user=user, strict=strict, dry_run=dry_run
                    )
                raise not_found(rt.plural, name, rt.group)
            patched = apply_patch(content_type, old, patch, strategic=rt.schema is None)
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, name, rt.group)
            new = objects.scoped(rt, old, patched, subresource)
            try:
                return await self._update(
                    rt, namespace, old, new, user, subresource, dry_run, strict
                )
            except _Moved:
                continue
        raise conflict(rt.plural, name, rt.group)

    async def _update(
        self,
        rt: ResourceType,
        namespace: str,
        old: dict[str, Any],
        new: dict[str, Any],
        user: User,
        subresource: str,
        dry_run: bool,
        strict: bool,
    ) -> dict[str, Any]:
        meta = dict(new.get("metadata") or {})
        meta["name"] = old["metadata"]["name"]
        new = {**new, "metadata": meta}
        if rt.namespaced:
            meta["namespace"] = old["metadata"]["namespace"]
        rv = old["metadata"]["resourceVersion"]
        admitted = await self._admit(
            "UPDATE", rt, namespace, new, old, user, subresource, dry_run, strict
        )
        current = self.store.get(rt.key, namespace if rt.namespaced else "", meta["name"])
        if current is None:
            raise not_found(rt.plural, meta["name"], rt.group)
        if current["metadata"]["resourceVersion"] != rv:
            raise _Moved()
        if dry_run:
            return admitted
        if _same(admitted, old):
            return old  # a no-op write keeps the resourceVersion, as on a real server
        return self.commit(rt, admitted, old)

    async def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        options: Mapping[str, Any] | None = None,
        user: User = SYSTEM,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        options = options or {}
        old = self.must_get(rt, namespace, name)
        if rt.key == NAMESPACES and name in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
            )
        pre = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if pre.get(field) and pre[field] != old["metadata"].get(field):
                raise conflict(rt.plural, name, rt.group)
        if user is not SYSTEM:
            req = AdmissionRequest("DELETE", rt, namespace, name, None, old, user, "", dry_run)
            await self.webhooks.mutate(req)
            await self.webhooks.validate(req)
        if dry_run:
            return old
        old = self.must_get(rt, namespace, name)
        policy = options.get("propagationPolicy")
        if policy == "Orphan" or options.get("orphanDependents") is True:
            self.collector.orphan(old["metadata"]["uid"])
        if rt.key == NAMESPACES:
            return self.collector.delete_namespace(old)
        meta = old["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return old
            marked = {
                **old,
                "metadata": {
                    **meta,
                    "deletionTimestamp": objects.now_rfc3339(self.clock()),
                    "deletionGracePeriodSeconds": 0,
                },
            }
            self.store.put(
                rt.key,
                {
                    **marked,
                    "metadata": {**marked["metadata"], "resourceVersion": self.store.next_rv()},
                },
            )
            return self.must_get(rt, namespace, name)
        self._remove(rt, old)
        return old

    def delete_system(self, key: ResKey, namespace: str, name: str) -> None:
        """Delete as a controller would (no admission), honouring finalizers."""
        rt = self.resource(key)
        obj = self.store.get(key, namespace if rt.namespaced else "", name)
        if obj is None:
            return
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                when = objects.now_rfc3339(self.clock())
                marked = {
                    **meta,
                    "deletionTimestamp": when,
                    "resourceVersion": self.store.next_rv(),
                }
                self.store.put(key, {**obj, "metadata": marked})
            return
        self._remove(rt, obj)

    # -- admission and validation --------------------------------------------------------------

    async def _admit(
        self,
        operation: str,
        rt: ResourceType,
        namespace: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        user: User,
        subresource: str,
        dry_run: bool,
        strict: bool,
    ) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if rt.schema is not None:
            obj = objects.check_custom(rt, obj, strict, self._schemas)
        if user is not SYSTEM:
            self.rbac.check_escalation(rt.key, namespace, obj, user.name, user.groups)
            req = AdmissionRequest(
                operation, rt, namespace, name, obj, old, user, subresource, dry_run
            )
            mutated = await self.webhooks.mutate(req)
            if mutated is not None and mutated is not obj:
                obj = mutated
                if rt.schema is not None:
                    obj = objects.check_custom(rt, obj, strict, self._schemas)
            req = AdmissionRequest(
                operation, rt, namespace, name, obj, old, user, subresource, dry_run
            )
            await self.webhooks.validate(req)
        return obj

    def _check_namespace(self, namespace: str) -> None:
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    async def drain(self) -> None:
        """Wait for pending garbage collection (tests and shutdown)."""
        await self.collector.drain()

    async def close(self) -> None:
        await self.drain()
        await self.webhooks.close()


class _Moved(Exception):
    """The object changed while webhooks were called: re-apply the patch."""


def _same(new: dict[str, Any], old: dict[str, Any]) -> bool:
    strip = ("resourceVersion", "generation", "managedFields")
    a = {
        **new,
        "metadata": {k: v for k, v in (new.get("metadata") or {}).items() if k not in strip},
    }
    b = {**old, "metadata": {k: v for k, v in old["metadata"].items() if k not in strip}}
    return a == b
