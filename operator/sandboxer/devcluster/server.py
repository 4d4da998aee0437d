"""HTTP layer of the embedded API server: aiohttp's low-level server calls `HttpApi.handle`.

Routing, bodies, lists, watches and Table output; the verbs themselves are `ApiServer`'s.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import yaml

from sandboxer.devcluster import protobuf, routes, tables
from sandboxer.devcluster.apiserver import ApiServer
from sandboxer.devcluster.auth import User, Users
from sandboxer.devcluster.errors import ApiError, bad_request, unsupported_media_type
from sandboxer.devcluster.patching import APPLY
from sandboxer.devcluster.rbac.attributes import from_request
from sandboxer.devcluster.resources import ResourceType
from sandboxer.devcluster.routes import JSON, json_response
from sandboxer.devcluster.selectors import matcher
from sandboxer.devcluster.store import Event, Watcher


@dataclass(frozen=True)
class Sent:
    """One request as the server received it, with the authenticated user's name."""

    method: str
    path: str
    query: dict[str, str]
    user: str
    user_agent: str


class HttpApi:
    """Translates HTTP requests into ApiServer calls; counts requests for tests and benchmarks."""

    def __init__(self, apiserver: ApiServer, users: Users, bookmark_interval: float = 60.0) -> None:
        self.apiserver = apiserver
        self.users = users
        self.bookmark_interval = bookmark_interval
        self.requests: Counter[tuple[str, str]] = Counter()  # (verb, plural) -> count
        # The latest requests, for tests that check who sent what (RBAC coverage, identity).
        self.log: deque[Sent] = deque(maxlen=10_000)
        self._closing = asyncio.Event()

    def close_watches(self) -> None:
        self._closing.set()

    async def handle(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            user = self.users.authenticate(request.headers.get("Authorization"))
            agent = request.headers.get("User-Agent", "")
            self.log.append(
                Sent(request.method, request.path, dict(request.query), user.name, agent)
            )
            attrs = from_request(request.method, request.path, request.query)
            self.apiserver.rbac.authorize(user.name, user.groups, attrs)
            return await self._route(request, user)
        except ApiError as exc:
            return json_response(exc.status(), exc.code)

    async def _route(
        self, request: aiohttp.web.BaseRequest, user: User
    ) -> aiohttp.web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method == "GET" and path == "/openapi/v2":
            return routes.openapi_v2(self.apiserver.registry, request)
        if request.method == "GET":
            static = routes.static(self.apiserver.registry, path)
            if static is not None:
                return static
        route = routes.parse_path(path)
        if route is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource: {path}"
            )
        rt = self.apiserver.resource((route.group, route.version, route.plural))
        if not rt.namespaced and route.namespace:
            raise ApiError(404, "NotFound", f"{rt.plural} is not namespaced")
        return await self._resource(request, user, rt, route)

    # -- resources ---------------------------------------------------------------------------

    async def _resource(
        self, request: aiohttp.web.BaseRequest, user: User, rt: ResourceType, route: routes.Route
    ) -> aiohttp.web.StreamResponse:
        q = request.query
        method = request.method
        ns = route.namespace if rt.namespaced else ""
        strict = q.get("fieldValidation", "") == "Strict"
        dry_run = q.get("dryRun") == "All"
        sub = route.subresource
        if sub not in ("", "status", "scale"):
            raise ApiError(404, "NotFound", f"subresource {sub!r} is not served by the dev cluster")
        if sub == "status" and not rt.status_subresource:
            raise ApiError(404, "NotFound", f"{rt.plural} has no status subresource")
        if method == "GET" and not route.name:
            if q.get("watch") in ("true", "1"):
                self.requests[("watch", rt.plural)] += 1
                return await self._watch(request, rt, ns)
            self.requests[("list", rt.plural)] += 1
            return self._list(request, rt, ns)
        verb = {
            "GET": "get",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }
        self.requests[(verb.get(method, method.lower()), rt.plural)] += 1
        if method == "POST" and not route.name:
            body = await self._body(request)
            obj = await self.apiserver.create(
                rt, ns, body, user=user, strict=strict, dry_run=dry_run
            )
            return self._object(request, rt, obj, 201)
        if not route.name:
            if method == "DELETE":
                return await self._delete_collection(request, user, rt, ns)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if sub == "scale":
            return await self._scale(request, user, rt, ns, route.name)
        if method == "GET":
            return self._object(request, rt, self.apiserver.must_get(rt, ns, route.name))
        if method == "PUT":
            body = await self._body(request)
            obj = await self.apiserver.update(
                rt, ns, route.name, body, subresource=sub, user=user, strict=strict, dry_run=dry_run
            )
            return self._object(request, rt, obj)
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            body = await self._body(request, yaml_ok=content_type == APPLY)
            obj = await self.apiserver.patch(
                rt,
                ns,
                route.name,
                content_type,
                body,
                subresource=sub,
                user=user,
                strict=strict,
                dry_run=dry_run,
            )
            return self._object(request, rt, obj)
        if method == "DELETE":
            options = await self._delete_options(request)
            obj = await self.apiserver.delete(
                rt, ns, route.name, options=options, user=user, dry_run=dry_run
            )
            return self._object(request, rt, obj)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    async def _body(self, request: aiohttp.web.BaseRequest, yaml_ok: bool = False) -> Any:
        content_type = request.headers.get("Content-Type", "")
        if protobuf.is_protobuf(content_type) and request.method != "PATCH":
            return protobuf.decode(await request.read(), content_type)
        if "protobuf" in content_type or "cbor" in content_type:
            raise unsupported_media_type(content_type, [JSON, "application/yaml"])
        raw = await request.read()
        if not raw:
            return None
        try:
            return yaml.safe_load(raw) if yaml_ok else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from exc

    async def _delete_options(self, request: aiohttp.web.BaseRequest) -> dict[str, Any]:
        body = await self._body(request)
        options: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        for key in ("propagationPolicy", "gracePeriodSeconds"):
            if key in request.query:
                options[key] = request.query[key]
        return options

    async def _delete_collection(
        self, request: aiohttp.web.BaseRequest, user: User, rt: ResourceType, ns: str
    ) -> aiohttp.web.StreamResponse:
        predicate = matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"))
        options = await self._delete_options(request)
        victims = [
            o for o in self.apiserver.iter(rt.key, ns or None) if predicate is None or predicate(o)
        ]
        for obj in victims:
            meta = obj["metadata"]
            await self.apiserver.delete(
                rt, meta.get("namespace", ""), meta["name"], options=options, user=user
            )
        return self._list_response(request, rt, victims)

    async def _scale(
        self, request: aiohttp.web.BaseRequest, user: User, rt: ResourceType, ns: str, name: str
    ) -> aiohttp.web.StreamResponse:
        if not rt.scale_subresource:
            raise ApiError(404, "NotFound", f"{rt.plural} has no scale subresource")
        if request.method in ("PUT", "PATCH"):
            body = await self._body(request)
            replicas = ((body or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise bad_request("spec.replicas must be a non-negative integer")
            await self.apiserver.patch(
                rt,
                ns,
                name,
                "application/merge-patch+json",
                {"spec": {"replicas": replicas}},
                user=user,
            )
        obj = self.apiserver.must_get(rt, ns, name)
        meta = obj["metadata"]
        scale = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
        }
        return json_response(scale)

    # -- reading -----------------------------------------------------------------------------

    def _wants_table(self, request: aiohttp.web.BaseRequest) -> bool:
        accept = request.headers.get("Accept", "")
        return "as=Table" in accept

    def _object(
        self,
        request: aiohttp.web.BaseRequest,
        rt: ResourceType,
        obj: dict[str, Any],
        status: int = 200,
    ) -> aiohttp.web.StreamResponse:
        if self._wants_table(request) and request.method == "GET":
            table = tables.build(
                rt,
                [obj],
                obj["metadata"].get("resourceVersion", ""),
                request.query.get("includeObject", "Metadata"),
                self.apiserver.clock(),
            )
            return json_response(table)
        if (
            self.apiserver.store.get(
                rt.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
            )
            is obj
        ):
            body = self.apiserver.store.raw(obj)
        else:
            body = json.dumps(obj).encode()
        return aiohttp.web.Response(body=body, status=status, content_type=JSON)

    def _select(
        self, request: aiohttp.web.BaseRequest, rt: ResourceType, ns: str
    ) -> list[dict[str, Any]]:
        predicate = matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"))
        source = self.apiserver.iter(rt.key, ns or None)
        objs = list(source) if predicate is None else [o for o in source if predicate(o)]
        objs.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return objs

    def _list(
        self, request: aiohttp.web.BaseRequest, rt: ResourceType, ns: str
    ) -> aiohttp.web.StreamResponse:
        objs = self._select(request, rt, ns)
        return self._list_response(request, rt, objs)

    def _list_response(
        self, request: aiohttp.web.BaseRequest, rt: ResourceType, objs: list[dict[str, Any]]
    ) -> aiohttp.web.StreamResponse:
        rv = str(self.apiserver.store.rv)
        meta: dict[str, Any] = {"resourceVersion": rv}
        limit = int(request.query.get("limit") or 0)
        start = 0
        token = request.query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start, rv = int(state["start"]), str(state["rv"])
                meta["resourceVersion"] = rv
            except (ValueError, KeyError) as exc:
                raise bad_request(f"invalid continue token: {exc}") from exc
        if limit > 0:
            end = start + limit
            if end < len(objs):
                state = {"start": end, "rv": rv}
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
                meta["remainingItemCount"] = len(objs) - end
            objs = objs[start:end]
        if self._wants_table(request):
            table = tables.build(
                rt, objs, rv, request.query.get("includeObject", "Metadata"), self.apiserver.clock()
            )
            table["metadata"].update(meta)
            return json_response(table)
        head = json.dumps(
            {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta}
        )
        raw = self.apiserver.store.raw
        body = head[:-1].encode() + b',"items":[' + b",".join(raw(o) for o in objs) + b"]}"
        return aiohttp.web.Response(body=body, content_type=JSON)

    async def _watch(
        self, request: aiohttp.web.BaseRequest, rt: ResourceType, ns: str
    ) -> aiohttp.web.StreamResponse:
        q = request.query
        predicate = matcher(q.get("labelSelector"), q.get("fieldSelector"))
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        rv = q.get("resourceVersion", "")
        initial = q.get("sendInitialEvents") == "true"
        store = self.apiserver.store
        watcher = Watcher(rt.key, ns or None, predicate)
        backlog: list[bytes] = []
        encode = self._table_encoder(request, rt) if self._wants_table(request) else _plain
        gone = False
        if rv in ("", "0") or initial:
            for obj in self._select(request, rt, ns):
                backlog.append(encode(Event(0, "ADDED", obj, None)))
            if initial and bookmarks:
                backlog.append(self._bookmark(rt, initial_end=True))
        else:
            try:
                since = store.events_since(rt.key, int(rv))
            except ValueError as exc:
                raise bad_request(f"invalid resourceVersion {rv!r}") from exc
            if since is None:
                gone = True
            else:
                for event in since:
                    watcher.offer(event)
        if not gone:
            store.subscribe(watcher)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": JSON})
        try:
            await response.prepare(request)
            if gone:
                status = ApiError(
                    410, "Expired", f"too old resource version: {rv} ({store.rv})"
                ).status()
                await response.write(
                    json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
                )
                return response
            if backlog:
                await response.write(b"".join(backlog))
            await self._stream(response, watcher, rt, bookmarks, timeout, encode)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            store.unsubscribe(watcher)
        return response

    async def _stream(
        self,
        response: aiohttp.web.StreamResponse,
        watcher: Watcher,
        rt: ResourceType,
        bookmarks: bool,
        seconds: float | None,
        encode: Callable[[Event], bytes],
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds if seconds else None
        next_bookmark = loop.time() + self.bookmark_interval
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while not self._closing.is_set():
                now = loop.time()
                wait = next_bookmark - now if bookmarks else None
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        return
                    wait = left if wait is None else min(wait, left)
                getter = asyncio.ensure_future(watcher.queue.get())
                done, _ = await asyncio.wait(
                    {getter, closing}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    if bookmarks and loop.time() >= next_bookmark:
                        await response.write(self._bookmark(rt))
                        next_bookmark = loop.time() + self.bookmark_interval
                    continue
                chunk = [getter.result()]
                while not watcher.queue.empty():
                    chunk.append(watcher.queue.get_nowait())
                await response.write(b"".join(encode(e) for e in chunk if e is not None))
        finally:
            closing.cancel()

    def _table_encoder(
        self, request: aiohttp.web.BaseRequest, rt: ResourceType
    ) -> Callable[[Event], bytes]:
        """`kubectl get -w`: each event carries a one-row Table; only the first has columns."""
        include = request.query.get("includeObject", "Metadata")
        first = True

        def encode(event: Event) -> bytes:
            nonlocal first
            rv = event.obj["metadata"].get("resourceVersion", "")
            table = tables.build(rt, [event.obj], rv, include, self.apiserver.clock())
            if not first:
                table["columnDefinitions"] = []
            first = False
            return json.dumps({"type": event.type, "object": table}).encode() + b"\n"

        return encode

    def _bookmark(self, rt: ResourceType, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(self.apiserver.store.rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"


def _plain(event: Event) -> bytes:
    return event.line()
