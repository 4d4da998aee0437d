"""Garbage collection by ownerReferences and namespace deletion, as kube-controller-manager does.

Background propagation: a deleted owner's dependents go after the owner's DELETE has returned,
and only once none of their owners exists. A namespace marked for deletion is emptied and
disappears when its last object is gone (finalizers can hold it in `Terminating`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sandboxer.devcluster import objects
from sandboxer.devcluster.store import ResKey

if TYPE_CHECKING:
    from sandboxer.devcluster.apiserver import ApiServer

NAMESPACES: ResKey = ("", "v1", "namespaces")


class GarbageCollector:
    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self._tasks: set[asyncio.Task[None]] = set()

    def orphan(self, owner_uid: str) -> None:
        store = self.api.store
        for res, ns, name in store.dependents(owner_uid):
            dep = store.get(res, ns, name)
            if dep is None:
                continue
            refs = [
                r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid
            ]
            meta = {**dep["metadata"], "ownerReferences": refs}
            if not refs:
                del meta["ownerReferences"]
            self.api.commit(self.api.resource(res), {**dep, "metadata": meta}, dep)

    def schedule(self, owner_uid: str) -> None:
        if not self.api.store.dependents(owner_uid):
            return
        try:
            task = asyncio.get_running_loop().create_task(self._collect(owner_uid))
        except RuntimeError:  # no loop: collect now (in-process setup before start)
            self._collect_now(owner_uid)
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _collect(self, owner_uid: str) -> None:
        await asyncio.sleep(0)  # background propagation: after the owner's DELETE returned
        self._collect_now(owner_uid)

    def _collect_now(self, owner_uid: str) -> None:
        store = self.api.store
        for res, ns, name in store.dependents(owner_uid):
            dep = store.get(res, ns, name)
            if dep is None:
                continue
            # A dependent goes only when none of its owners exists any more.
            owners = [r.get("uid", "") for r in dep["metadata"].get("ownerReferences") or []]
            if any(self.api.by_uid(uid) is not None for uid in owners):
                continue
            self.api.delete_system(res, ns, name)

    def delete_namespace(self, ns_obj: dict[str, Any]) -> dict[str, Any]:
        store = self.api.store
        name = ns_obj["metadata"]["name"]
        meta = {**ns_obj["metadata"], "deletionTimestamp": objects.now_rfc3339(self.api.clock())}
        status = {**(ns_obj.get("status") or {}), "phase": "Terminating"}
        meta["resourceVersion"] = store.next_rv()
        marked = {**ns_obj, "metadata": meta, "status": status}
        store.put(NAMESPACES, marked)
        for rt in self.api.registry:
            if rt.namespaced:
                for obj in list(store.iter(rt.key, name)):
                    self.api.delete_system(rt.key, name, obj["metadata"]["name"])
        self.finish_namespace(store.get(NAMESPACES, "", name) or marked)
        return marked

    def finish_namespace(self, ns_obj: dict[str, Any]) -> None:
        store = self.api.store
        name = ns_obj["metadata"]["name"]
        for rt in self.api.registry:
            if rt.namespaced and next(store.iter(rt.key, name), None) is not None:
                return
        if store.get(NAMESPACES, "", name) is not None:
            store.remove(NAMESPACES, store.get(NAMESPACES, "", name) or ns_obj)

    async def drain(self) -> None:
        """Wait for pending garbage collection (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
