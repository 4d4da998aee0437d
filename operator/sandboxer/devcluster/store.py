"""In-memory object store: indexed by resource and namespace, with a watch event window.

Stored objects are never modified in place: every write stores a fresh dict, so lists and
watch streams can share references without copying. Each resource keeps a bounded window of
recent events so that a watch can resume from a resourceVersion; older versions get 410 Gone.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ResKey = tuple[str, str, str]
ObjKey = tuple[ResKey, str, str]  # resource, namespace ("" when cluster-scoped), name
Listener = Callable[[str, ResKey, dict[str, Any], dict[str, Any] | None], None]


@dataclass(slots=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None
    _line: bytes | None = None

    def line(self, kind: str | None = None) -> bytes:
        if kind is not None:
            return json.dumps({"type": kind, "object": self.obj}).encode() + b"\n"
        if self._line is None:
            self._line = json.dumps({"type": self.type, "object": self.obj}).encode() + b"\n"
        return self._line


@dataclass(eq=False)
class Watcher:
    resource: ResKey
    namespace: str | None
    predicate: Callable[[Mapping[str, Any]], bool] | None
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def offer(self, event: Event) -> None:
        ns = (event.obj.get("metadata") or {}).get("namespace", "")
        if self.namespace and ns != self.namespace:
            return
        if self.predicate is None:
            self.queue.put_nowait(event)
            return
        now = self.predicate(event.obj)
        before = event.old is not None and self.predicate(event.old)
        if event.type == "MODIFIED" and now != before:
            # The object entered or left the selected set: the watcher sees ADDED/DELETED.
            kind = "ADDED" if now else "DELETED"
            self.queue.put_nowait(Event(event.rv, kind, event.obj, event.old))
        elif now:
            self.queue.put_nowait(event)


class Store:
    def __init__(self, window: int = 5000) -> None:
        self._objects: dict[ResKey, dict[str, dict[str, dict[str, Any]]]] = {}
        self._raw: dict[int, bytes] = {}  # id(obj) -> JSON, cached while the object is stored
        self._events: dict[ResKey, deque[Event]] = {}
        self._gone_before: dict[ResKey, int] = {}  # versions below this left the window
        self._watchers: dict[ResKey, set[Watcher]] = {}
        self._owners: dict[str, set[ObjKey]] = {}  # owner uid -> dependents
        self._window = window
        self.rv = 1
        self.listeners: list[Listener] = []

    # -- reading -----------------------------------------------------------------------------

    def get(self, res: ResKey, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(res, {}).get(namespace, {}).get(name)

    def iter(self, res: ResKey, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        by_ns = self._objects.get(res, {})
        if namespace is not None:
            yield from by_ns.get(namespace, {}).values()
            return
        for objs in list(by_ns.values()):
            yield from objs.values()

    def count(self, res: ResKey) -> int:
        return sum(len(v) for v in self._objects.get(res, {}).values())

    def raw(self, obj: dict[str, Any]) -> bytes:
        """The object's JSON, encoded once per stored version."""
        cached = self._raw.get(id(obj))
        if cached is None:
            cached = json.dumps(obj).encode()
            self._raw[id(obj)] = cached
        return cached

    def dependents(self, owner_uid: str) -> list[ObjKey]:
        return sorted(self._owners.get(owner_uid, ()))

    # -- writing -----------------------------------------------------------------------------

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def put(self, res: ResKey, obj: dict[str, Any]) -> None:
        """Store obj (its metadata.resourceVersion already set by next_rv) and notify."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        bucket = self._objects.setdefault(res, {}).setdefault(ns, {})
        old = bucket.get(name)
        bucket[name] = obj
        if old is not None:
            self._raw.pop(id(old), None)
            self._unindex_owners(res, old)
        self._index_owners(res, obj)
        self._emit(
            res, Event(int(meta["resourceVersion"]), "MODIFIED" if old else "ADDED", obj, old)
        )

    def remove(self, res: ResKey, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        bucket = self._objects.get(res, {}).get(ns, {})
        old = bucket.pop(name, None)
        if old is None:
            return
        self._raw.pop(id(old), None)
        self._unindex_owners(res, old)
        # A deletion gets its own resourceVersion, as on a real server; obj is the final state.
        final = {**obj, "metadata": {**obj["metadata"], "resourceVersion": self.next_rv()}}
        self._emit(res, Event(self.rv, "DELETED", final, old))

    def drop_resource(self, res: ResKey) -> list[dict[str, Any]]:
        objs = list(self.iter(res))
        for obj in objs:
            self.remove(res, obj)
        return objs

    def _index_owners(self, res: ResKey, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or ():
            key = (res, meta.get("namespace", ""), meta["name"])
            self._owners.setdefault(ref.get("uid", ""), set()).add(key)

    def _unindex_owners(self, res: ResKey, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or ():
            deps = self._owners.get(ref.get("uid", ""))
            if deps is not None:
                deps.discard((res, meta.get("namespace", ""), meta["name"]))
                if not deps:
                    del self._owners[ref.get("uid", "")]

    def _emit(self, res: ResKey, event: Event) -> None:
        window = self._events.setdefault(res, deque())
        window.append(event)
        if len(window) > self._window:
            dropped = window.popleft()
            self._gone_before[res] = dropped.rv + 1
        for watcher in self._watchers.get(res, ()):
            watcher.offer(event)
        for listener in self.listeners:
            listener(event.type, res, event.obj, event.old)

    # -- watching ----------------------------------------------------------------------------

    def compact(self, res: ResKey) -> None:
        """Forget the event window of a resource (tests use it to provoke 410 Gone)."""
        self._events.pop(res, None)
        self._gone_before[res] = self.rv + 1

    def events_since(self, res: ResKey, rv: int) -> list[Event] | None:
        """Events after rv, or None when rv is older than the window (410 Gone)."""
        if rv + 1 < self._gone_before.get(res, 0):
            return None
        return [e for e in self._events.get(res, ()) if e.rv > rv]

    def subscribe(self, watcher: Watcher) -> None:
        self._watchers.setdefault(watcher.resource, set()).add(watcher)

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.resource, set()).discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())
