"""API-server semantics over HTTP: versions, conflicts, lists, watches, patches, status, GC."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandboxer.devcluster.cluster import DevCluster
from tests.integration.conftest import ROOT, eventually

CMS = "/api/v1/namespaces/default/configmaps"
ESBS = "/apis/sandboxer.io/v1alpha1/namespaces/default/experimentsandboxes"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONP = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
async def api(devcluster: DevCluster) -> AsyncIterator[aiohttp.ClientSession]:
    async with devcluster.session("admin") as session:
        yield session


def cm(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"a": "1"}}


def sandbox(name: str, gpus: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": name},
        "spec": {"class": "h100", "gpus": gpus},
    }


async def call(
    api: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kw: Any
) -> tuple[int, Any]:
    async with api.request(method, url, json=body, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def watch_lines(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < count:
        line = await asyncio.wait_for(resp.content.readline(), timeout=5)
        if not line:
            break
        out.append(json.loads(line))
    return out


async def test_unauthenticated_requests_get_401(devcluster: DevCluster) -> None:
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=devcluster.tls.client_context())
        ) as anon,
        anon.get(devcluster.url + "/api/v1/namespaces") as resp,
    ):
        assert resp.status == 401


async def test_metadata_versions_and_generation(api: aiohttp.ClientSession) -> None:
    status, created = await call(api, "POST", CMS, cm("x"))
    assert status == 201
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["generation"] == 1
    assert meta["creationTimestamp"]
    _, labelled = await call(
        api, "PATCH", f"{CMS}/x", {"metadata": {"labels": {"a": "b"}}}, headers=MERGE
    )
    assert int(labelled["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert labelled["metadata"]["generation"] == 1
    _, changed = await call(api, "PATCH", f"{CMS}/x", {"data": {"a": "2"}}, headers=MERGE)
    assert changed["metadata"]["generation"] == 2
    assert changed["metadata"]["uid"] == meta["uid"]


async def test_stale_resource_version_conflicts(api: aiohttp.ClientSession) -> None:
    _, created = await call(api, "POST", CMS, cm("x"))
    stale = created["metadata"]["resourceVersion"]
    await call(api, "PATCH", f"{CMS}/x", {"data": {"a": "2"}}, headers=MERGE)

    update = {**created, "data": {"a": "3"}}
    status, body = await call(api, "PUT", f"{CMS}/x", update)
    assert status == 409
    assert body["reason"] == "Conflict"
    patch = {"metadata": {"resourceVersion": stale}, "data": {"a": "4"}}
    status, _ = await call(api, "PATCH", f"{CMS}/x", patch, headers=MERGE)
    assert status == 409

    # kopf's JSON patch starts with a `test` of the resourceVersion; the real server answers
    # a failed test with 422 and kopf retries on exactly that.
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    status, _ = await call(api, "PATCH", f"{CMS}/x", ops, headers=JSONP)
    assert status == 422
    _, fresh = await call(api, "GET", f"{CMS}/x")
    ops[0]["value"] = fresh["metadata"]["resourceVersion"]
    status, patched = await call(api, "PATCH", f"{CMS}/x", ops, headers=JSONP)
    assert status == 200
    assert patched["metadata"]["finalizers"] == ["x"]


async def test_list_shape_and_selectors(api: aiohttp.ClientSession) -> None:
    await call(api, "POST", CMS, cm("a", {"tier": "web"}))
    await call(api, "POST", CMS, cm("b", {"tier": "db"}))
    await call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": "other"}})
    await call(api, "POST", "/api/v1/namespaces/other/configmaps", cm("a", {"tier": "web"}))

    _, listed = await call(api, "GET", CMS)
    assert listed["kind"] == "ConfigMapList"
    assert listed["apiVersion"] == "v1"
    assert int(listed["metadata"]["resourceVersion"]) > 0
    _, web = await call(api, "GET", "/api/v1/configmaps", params={"labelSelector": "tier=web"})
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in web["items"]] == [
        ("default", "a"),
        ("other", "a"),
    ]
    params = {"fieldSelector": "metadata.namespace=other,metadata.name=a"}
    _, one = await call(api, "GET", "/api/v1/configmaps", params=params)
    assert [i["metadata"]["namespace"] for i in one["items"]] == ["other"]
    _, page = await call(api, "GET", "/api/v1/configmaps", params={"limit": "2"})
    assert len(page["items"]) == 2
    assert page["metadata"]["continue"]
    _, rest = await call(
        api,
        "GET",
        "/api/v1/configmaps",
        params={"limit": "2", "continue": page["metadata"]["continue"]},
    )
    assert len(rest["items"]) == 1


async def test_watch_from_a_version_does_not_replay_and_filters(api: aiohttp.ClientSession) -> None:
    await call(api, "POST", CMS, cm("old", {"tier": "web"}))
    _, listed = await call(api, "GET", CMS)
    rv = listed["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": rv, "labelSelector": "tier=web"}
    async with api.get(CMS, params=params) as resp:
        await call(api, "POST", CMS, cm("other", {"tier": "db"}))
        await call(api, "POST", CMS, cm("new", {"tier": "web"}))
        await call(
            api, "PATCH", f"{CMS}/old", {"metadata": {"labels": {"tier": "db"}}}, headers=MERGE
        )
        events = await watch_lines(resp, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "new"),
        ("DELETED", "old"),  # left the selected set
    ]


async def test_watch_without_version_starts_with_current_state(api: aiohttp.ClientSession) -> None:
    await call(api, "POST", CMS, cm("a"))
    params = {"watch": "1", "fieldSelector": "metadata.name=a"}
    async with api.get(CMS, params=params) as resp:
        first = await watch_lines(resp, 1)
    assert first[0]["type"] == "ADDED"


async def test_watch_bookmarks_and_timeout() -> None:
    async with DevCluster(bookmark_interval=0.2) as cluster, cluster.session() as api:
        params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
        async with api.get(CMS, params=params) as resp:
            body = await asyncio.wait_for(resp.content.read(), timeout=5)
        events = [json.loads(line) for line in body.splitlines()]
    assert events
    assert all(e["type"] == "BOOKMARK" for e in events)
    assert events[0]["object"]["kind"] == "ConfigMap"
    assert events[0]["object"]["metadata"]["resourceVersion"]


async def test_watch_from_a_compacted_version_gets_410(
    api: aiohttp.ClientSession, devcluster: DevCluster
) -> None:
    _, created = await call(api, "POST", CMS, cm("a"))
    await call(api, "POST", CMS, cm("b"))  # an event the watcher would miss
    devcluster.apiserver.store.compact(("", "v1", "configmaps"))
    params = {"watch": "true", "resourceVersion": created["metadata"]["resourceVersion"]}
    async with api.get(CMS, params=params) as resp:
        events = await watch_lines(resp, 1)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


async def test_patch_types_by_content_type(api: aiohttp.ClientSession) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "nodeSelector": {"nope": "nope"},  # stays Pending: the scheduler leaves it alone
            "containers": [
                {"name": "a", "image": "one", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "two"},
            ],
        },
    }
    await call(api, "POST", "/api/v1/namespaces/default/pods", pod)
    smp = {"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}
    status, patched = await call(
        api,
        "PATCH",
        "/api/v1/namespaces/default/pods/p",
        smp,
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert status == 200
    containers = patched["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b"]
    assert containers[0]["image"] == "one"
    assert containers[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]

    await call(api, "POST", CMS, {"metadata": {"name": "m"}, "data": {"a": "1", "b": "2"}})
    _, merged = await call(api, "PATCH", f"{CMS}/m", {"data": {"a": None}}, headers=MERGE)
    assert merged["data"] == {"b": "2"}

    await call(api, "POST", "/apis/sandboxer.io/v1alpha1/sandboxclasses", _sandbox_class())
    status, body = await call(
        api,
        "PATCH",
        "/apis/sandboxer.io/v1alpha1/sandboxclasses/h100",
        {"spec": {"maxGpus": 2}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert status == 415
    assert "application/merge-patch+json" in body["message"]


def _sandbox_class() -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples/class-h100.yaml").read_text())
    return doc


async def test_status_subresource_is_written_separately(api: aiohttp.ClientSession) -> None:
    status, created = await call(api, "POST", ESBS, {**sandbox("s"), "status": {"phase": "Hacked"}})
    assert status == 201
    assert "status" not in created
    _, after = await call(
        api,
        "PATCH",
        f"{ESBS}/s/status",
        {"status": {"phase": "Pending"}, "spec": {"gpus": 7}},
        headers=MERGE,
    )
    assert after["status"]["phase"] == "Pending"
    assert after["spec"]["gpus"] == 1
    assert after["metadata"]["generation"] == 1
    _, main = await call(
        api,
        "PATCH",
        f"{ESBS}/s",
        {"status": {"phase": "Ready"}, "spec": {"gpus": 2}},
        headers=MERGE,
    )
    assert main["status"]["phase"] == "Pending"
    assert main["spec"]["gpus"] == 2
    assert main["metadata"]["generation"] == 2


async def test_custom_objects_are_validated_with_causes(api: aiohttp.ClientSession) -> None:
    status, body = await call(api, "POST", ESBS, sandbox("s", gpus=-1))
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.gpus"
    assert "must be >= 0" in body["details"]["causes"][0]["message"]
    loose = {**sandbox("t"), "spec": {"class": "h100", "colour": "blue"}}
    status, body = await call(api, "POST", ESBS, loose)  # no fieldValidation: pruned
    assert status == 201
    assert "colour" not in body["spec"]
    status, body = await call(
        api,
        "POST",
        ESBS,
        {**loose, "metadata": {"name": "u"}},
        params={"fieldValidation": "Strict"},
    )
    assert status == 400
    assert 'unknown field "spec.colour"' in body["message"]


async def test_finalizers_hold_deletion_and_gc_waits_for_them(
    api: aiohttp.ClientSession, devcluster: DevCluster
) -> None:
    _, owner = await call(api, "POST", CMS, cm("owner"))
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    dep = {"metadata": {"name": "dep", "ownerReferences": [ref], "finalizers": ["keep"]}}
    await call(api, "POST", CMS, dep)
    status, _ = await call(api, "DELETE", f"{CMS}/owner")
    assert status == 200
    await eventually(
        lambda: bool(
            (devcluster.get("v1", "ConfigMap", "dep", "default") or {})
            .get("metadata", {})
            .get("deletionTimestamp")
        ),
        message="dependent marked for deletion",
    )
    await call(api, "PATCH", f"{CMS}/dep", {"metadata": {"finalizers": None}}, headers=MERGE)
    status, _ = await call(api, "GET", f"{CMS}/dep")
    assert status == 404


async def test_discovery_lists_real_short_names(api: aiohttp.ClientSession) -> None:
    _, core = await call(api, "GET", "/api/v1")
    short = {r["name"]: r.get("shortNames", []) for r in core["resources"]}
    assert short["configmaps"] == ["cm"]
    assert short["services"] == ["svc"]
    assert short["persistentvolumeclaims"] == ["pvc"]
    assert short["namespaces"] == ["ns"]
    assert short["pods"] == ["po"]
    _, apps = await call(api, "GET", "/apis/apps/v1")
    assert {r["name"]: r.get("shortNames") for r in apps["resources"]}["statefulsets"] == ["sts"]
    _, custom = await call(api, "GET", "/apis/sandboxer.io/v1alpha1")
    esb = next(r for r in custom["resources"] if r["name"] == "experimentsandboxes")
    assert esb["shortNames"] == ["esb", "sandbox"]
    assert esb["categories"] == ["sandboxer"]


async def test_openapi_documents(api: aiohttp.ClientSession) -> None:
    _, root = await call(api, "GET", "/openapi/v3")
    url = root["paths"]["apis/sandboxer.io/v1alpha1"]["serverRelativeURL"]
    _, doc = await call(api, "GET", url)
    schema = doc["components"]["schemas"]["io.sandboxer.v1alpha1.ExperimentSandbox"]
    assert "gpus" in schema["properties"]["spec"]["properties"]
    _, v2 = await call(api, "GET", "/openapi/v2", headers={"Accept": "application/json"})
    assert "io.sandboxer.v1alpha1.SandboxClass" in v2["definitions"]
