from __future__ import annotations

from typing import Any

from sandboxer.devcluster.store import Store

RES = ("", "v1", "configmaps")


def obj(store: Store, name: str, owner: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    meta["resourceVersion"] = store.next_rv()
    if owner:
        meta["ownerReferences"] = [{"uid": owner}]
    return {"metadata": meta}


def test_events_carry_increasing_versions_and_old_objects() -> None:
    store = Store()
    seen: list[tuple[str, str]] = []
    store.listeners.append(lambda kind, res, o, old: seen.append((kind, o["metadata"]["name"])))
    first = obj(store, "a")
    store.put(RES, first)
    second = obj(store, "a")
    store.put(RES, second)
    store.remove(RES, second)
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    since = store.events_since(RES, int(first["metadata"]["resourceVersion"]))
    assert since is not None
    assert [e.type for e in since] == ["MODIFIED", "DELETED"]
    assert since[0].old is first
    assert store.get(RES, "ns", "a") is None


def test_window_overflow_means_gone() -> None:
    store = Store(window=2)
    start = int(store.rv)
    for name in "abc":
        store.put(RES, obj(store, name))
    assert store.events_since(RES, start) is None  # the first event left the window
    latest = store.events_since(RES, store.rv - 1)
    assert latest is not None
    assert [e.obj["metadata"]["name"] for e in latest] == ["c"]


def test_owner_index_follows_writes() -> None:
    store = Store()
    store.put(RES, obj(store, "dep", owner="boss"))
    assert store.dependents("boss") == [(RES, "ns", "dep")]
    store.put(RES, obj(store, "dep"))  # owner reference dropped
    assert store.dependents("boss") == []


def test_raw_json_is_cached_per_stored_version() -> None:
    store = Store()
    first = obj(store, "a")
    store.put(RES, first)
    assert store.raw(first) is store.raw(first)
