"""URL parsing and the non-resource paths of the embedded API (health, discovery, OpenAPI)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp.web

from sandboxer.devcluster import discovery, openapi
from sandboxer.devcluster.errors import ApiError
from sandboxer.devcluster.resources import Registry

JSON = "application/json"


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str
    name: str
    subresource: str


def parse_path(path: str) -> Route | None:
    """Resource URLs: /api/v1/[namespaces/NS/]PLURAL[/NAME[/SUB]] and /apis/G/V/...."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return Route(group, version, plural, namespace, name, sub)


def json_response(payload: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(payload).encode(), status=status, content_type=JSON)


def static(registry: Registry, path: str) -> aiohttp.web.StreamResponse | None:
    """Health, version, discovery and OpenAPI v3: the paths that are not resources."""
    if path in ("/healthz", "/livez", "/readyz"):
        return aiohttp.web.Response(text="ok")
    if path == "/version":
        return json_response(discovery.SERVER_VERSION)
    if path == "/api":
        return json_response(discovery.api_versions())
    if path == "/apis":
        return json_response(discovery.api_group_list(registry))
    if path == "/openapi/v3":
        return json_response(openapi.v3_root(registry))
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
        group, version = (
            ("", parts[3]) if parts[2] == "api" else (parts[3], parts[4] if len(parts) == 5 else "")
        )
        doc = openapi.v3_group_version(registry, group, version)
        if doc is None:
            raise ApiError(404, "NotFound", f"no OpenAPI v3 document for {path}")
        return json_response(doc)
    if len(parts) == 2 and parts[0] == "api":
        doc = discovery.api_resource_list(registry, "", parts[1])
        return json_response(doc) if doc else None
    if len(parts) == 2 and parts[0] == "apis":
        group_doc = discovery.api_group(registry, parts[1])
        if group_doc is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource: {path}"
            )
        return json_response(group_doc)
    if len(parts) == 3 and parts[0] == "apis":
        doc = discovery.api_resource_list(registry, parts[1], parts[2])
        if doc is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource: {path}"
            )
        return json_response(doc)
    return None


def openapi_v2(registry: Registry, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
    # kubectl asks for protobuf first; 406 makes it use the v3 documents instead.
    accept = request.headers.get("Accept", "")
    if "protobuf" in accept and "json" not in accept:
        raise ApiError(406, "NotAcceptable", "only application/json is served for /openapi/v2")
    return json_response(openapi.v2(registry))
