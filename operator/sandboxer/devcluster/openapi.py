"""OpenAPI v2 and v3 documents, enough for kubectl's validation, `apply` and `explain`.

kubectl asks /openapi/v3 whether a kind's PATCH accepts `fieldValidation`; since every path
here declares it, kubectl validates on the server (`fieldValidation=Strict`), where custom
objects are checked against their CRD schema. Core kinds are served as open objects: the dev
cluster does not validate them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from sandboxer.devcluster.resources import Registry, ResourceType

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_OBJECT_META_SCHEMA: dict[str, Any] = {
    "description": "ObjectMeta is metadata that all persisted resources must have.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {"type": "string", "description": "Prefix for a server-generated name."},
        "namespace": {"type": "string", "description": "The namespace of the object."},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Map of string keys and values to organize and select objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Unstructured key value map stored with a resource.",
        },
        "uid": {"type": "string", "description": "Unique identifier, set by the server."},
        "resourceVersion": {"type": "string", "description": "Opaque version of this object."},
        "generation": {"type": "integer", "format": "int64"},
        "creationTimestamp": {"type": "string", "format": "date-time"},
        "deletionTimestamp": {"type": "string", "format": "date-time"},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    },
}


def schema_name(rt: ResourceType) -> str:
    if not rt.group:
        return f"io.k8s.api.core.{rt.version}.{rt.kind}"
    if rt.group.endswith(".k8s.io") or "." not in rt.group:
        return f"io.k8s.api.{rt.group.split('.')[0]}.{rt.version}.{rt.kind}"
    reverse = ".".join(reversed(rt.group.split(".")))
    return f"{reverse}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _schema(rt: ResourceType, ref_prefix: str) -> dict[str, Any]:
    if rt.schema is None:
        schema: dict[str, Any] = {
            "type": "object",
            "description": f"{rt.kind} (the dev cluster serves no field schema for core kinds).",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    else:
        schema = copy.deepcopy(rt.schema)
        props = schema.setdefault("properties", {})
        props["metadata"] = {
            "description": "Standard object's metadata.",
            "allOf": [{"$ref": f"{ref_prefix}{OBJECT_META}"}],
        }
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    return schema


def _operation(rt: ResourceType, action: str, ref: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt),
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}
        },
    }
    if action in ("patch", "put", "post"):
        op["parameters"] = [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
        ]
    return op


def _paths(rt: ResourceType, ref: str) -> dict[str, Any]:
    base = rt.base_path("{namespace}" if rt.namespaced else None)
    return {
        base: {"get": _operation(rt, "list", ref), "post": _operation(rt, "post", ref)},
        f"{base}/{{name}}": {
            "get": _operation(rt, "get", ref),
            "put": _operation(rt, "put", ref),
            "patch": _operation(rt, "patch", ref),
            "delete": _operation(rt, "delete", ref),
        },
    }


def v3_group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = [rt for rt in registry if rt.group == group and rt.version == version]
    if not types:
        return None
    prefix = "#/components/schemas/"
    schemas: dict[str, Any] = {OBJECT_META: _OBJECT_META_SCHEMA}
    paths: dict[str, Any] = {}
    for rt in types:
        name = schema_name(rt)
        schemas[name] = _schema(rt, prefix)
        paths.update(_paths(rt, prefix + name))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def v3_root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = v3_group_version(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


def v2(registry: Registry) -> dict[str, Any]:
    prefix = "#/definitions/"
    definitions: dict[str, Any] = {OBJECT_META: _OBJECT_META_SCHEMA}
    paths: dict[str, Any] = {}
    for rt in registry:
        name = schema_name(rt)
        definitions[name] = _schema(rt, prefix)
        for path, ops in _paths(rt, prefix + name).items():
            paths[path] = {
                verb: {k: v for k, v in op.items() if k != "responses"} for verb, op in ops.items()
            }
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "definitions": definitions,
    }
