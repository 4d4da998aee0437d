"""Kubernetes protobuf request bodies for the built-in kinds, decoded the way kube-apiserver does.

kubectl 1.35 sends typed objects (`kubectl create namespace|secret|configmap|...`) as
`application/vnd.kubernetes.protobuf`: the magic `k8s\\0`, then a `runtime.Unknown` whose
`typeMeta` names apiVersion and kind and whose `raw` is the object's message. The message
definitions are upstream's `generated.proto` files (k8s.io/api, apimachinery and
apiextensions-apiserver at kubectl's version, under `k8sproto/`), compiled by grpcio-tools into
`k8sproto/descriptors.binpb` (`make k8s-proto`, see `protobuf_gen`; a test fails when it drifts).

The decoded message becomes the JSON object Go would produce from the same struct:
- `meta.v1.Time` is RFC 3339 in whole seconds (upstream drops nanoseconds on decode), an empty
  one `null`; `MicroTime` keeps microseconds; `Duration` is Go's duration string;
- `Quantity` is its string, `IntOrString` an int or a string, `RawExtension`/`FieldsV1` their
  embedded JSON, `bytes` base64 (Secret data, caBundle);
- an embedded struct Go's JSON flattens (`Probe.handler`, `Volume.volumeSource`) is flattened;
- Go's marshaller writes every non-pointer field, zero or not, while a pointer is written only
  when set. A zero is dropped where the Go field is a non-pointer `omitempty` scalar or
  `omitzero` (`k8sproto/omitempty.json`, from upstream's struct tags) and kept otherwise, since
  a pointer's 0 or false (`replicas: 0`, `allowPrivilegeEscalation: false`) means something.

Custom resources have no protobuf form: kube-apiserver answers 415 for them, and so does this.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from sandboxer.devcluster.errors import ApiError, bad_request, unsupported_media_type

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
DESCRIPTORS = Path(__file__).with_name("k8sproto") / "descriptors.binpb"
ACCEPTED = ["application/json", "application/yaml", PROTOBUF]

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_APIEXTENSIONS = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions"


def is_protobuf(content_type: str) -> bool:
    return content_type.split(";")[0].strip() == PROTOBUF


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    return pool


def message(full_name: str) -> type[Message] | None:
    try:
        descriptor = _pool().FindMessageTypeByName(full_name)
    except KeyError:
        return None
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def proto_package(api_version: str) -> str:
    """`apps/v1` -> `k8s.io.api.apps.v1`; upstream names packages by the group's first label."""
    group, _, version = api_version.rpartition("/")
    if group == "apiextensions.k8s.io":
        return f"{_APIEXTENSIONS}.{version}"
    return f"k8s.io.api.{group.split('.')[0] or 'core'}.{version}"


def decode(raw: bytes, content_type: str = PROTOBUF) -> dict[str, Any]:
    """The JSON object a protobuf request body holds; ApiError where kube-apiserver refuses it."""
    if not raw.startswith(MAGIC):
        raise bad_request("the protobuf body does not start with the Kubernetes prefix 'k8s\\x00'")
    unknown_cls = message(_UNKNOWN)
    assert unknown_cls is not None, "runtime.Unknown is missing from the compiled descriptors"
    try:
        unknown: Any = unknown_cls.FromString(raw[len(MAGIC) :])
    except DecodeError as exc:
        raise bad_request(f"the protobuf envelope (runtime.Unknown) is malformed: {exc}") from exc
    api_version, kind = unknown.typeMeta.apiVersion, unknown.typeMeta.kind
    if not api_version or not kind:
        raise bad_request("the protobuf envelope names no apiVersion and kind")
    if unknown.contentEncoding:
        raise unsupported_media_type(f"{content_type} ({unknown.contentEncoding})", ACCEPTED)
    if not _is_builtin(api_version):
        # Custom resources have no protobuf serializer upstream: 415 there too.
        raise unsupported_media_type(f"{content_type} for {kind}.{api_version}", ACCEPTED[:2])
    cls = message(f"{proto_package(api_version)}.{kind}") or _meta_kind(kind)
    if cls is None:
        raise bad_request(f'no kind "{kind}" is registered for version "{api_version}"')
    try:
        obj = cls.FromString(unknown.raw)
    except DecodeError as exc:
        raise bad_request(f"the protobuf body is not a valid {kind}: {exc}") from exc
    return {"kind": kind, "apiVersion": api_version, **to_json(obj)}


def _meta_kind(kind: str) -> type[Message] | None:
    """Options kinds (DeleteOptions, ...) from meta/v1 are registered in every built-in group."""
    return message(f"{_META}.{kind}") if kind.endswith("Options") else None


def _is_builtin(api_version: str) -> bool:
    prefix = proto_package(api_version) + "."
    return any(name.startswith(prefix) for name in _message_names())


@cache
def _message_names() -> frozenset[str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    return frozenset(f"{f.package}.{m.name}" for f in files.file for m in f.message_type)


@cache
def _zero_omitted() -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = json.loads(
        DESCRIPTORS.with_name("omitempty.json").read_text()
    )
    return table


def _is_zero(value: Any) -> bool:
    if isinstance(value, Message):
        return all(_is_zero(v) for _, v in value.ListFields())
    return not value


def _omitted(field: FieldDescriptor, value: Any, option: str | None) -> bool:
    """Whether Go's JSON encoder leaves this present field out (see the module docstring)."""
    if option is None or not _is_zero(value):
        return False
    return option == "omitzero" or field.type != FieldDescriptor.TYPE_MESSAGE


def to_json(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    options = _zero_omitted().get(msg.DESCRIPTOR.full_name, {})
    for field, value in msg.ListFields():
        if field.is_repeated:
            if _is_map(field):
                of = field.message_type.fields_by_name["value"]
                out[field.name] = {k: _value(of, v) for k, v in value.items()}
            else:
                out[field.name] = [_value(field, v) for v in value]
            continue
        option = options.get(field.name)
        if option == "inline":
            out.update(_value(field, value))
        elif not _omitted(field, value, option):
            out[field.name] = _value(field, value)
    return out


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return value
    return _special(field.message_type, value)


def _special(descriptor: Descriptor, value: Any) -> Any:
    name = descriptor.full_name
    if name == f"{_META}.Time":
        return _timestamp(value, "%Y-%m-%dT%H:%M:%SZ", micro=False)
    if name == f"{_META}.MicroTime":
        return _timestamp(value, "%Y-%m-%dT%H:%M:%S.%fZ", micro=True)
    if name == f"{_META}.Duration":
        return go_duration(value.duration)
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return value.string
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        return value.strVal if value.type == 1 else value.intVal
    if name in ("k8s.io.apimachinery.pkg.runtime.RawExtension", f"{_META}.FieldsV1"):
        raw = value.raw if name.endswith("RawExtension") else value.Raw
        return json.loads(raw) if raw else None
    return to_json(value)


def _timestamp(value: Any, fmt: str, *, micro: bool) -> str | None:
    if not value.ListFields():
        return None  # Go's zero time.Time marshals to JSON null
    nanos = value.nanos if micro else 0
    moment = datetime.fromtimestamp(value.seconds + nanos // 1000 / 1e6, UTC)
    return moment.strftime(fmt)


def go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String(): `1h2m3s`, `1.5s`, `250ms`, `0s`."""
    if nanoseconds == 0:
        return "0s"
    sign, n = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return f"{sign}{_trim(n / size)}{unit}"
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if hours or minutes else ""
    return f"{sign}{text}{_trim(rest / 1e9)}s"


def _trim(number: float) -> str:
    return f"{number:.9f}".rstrip("0").rstrip(".")


__all__ = ["PROTOBUF", "ApiError", "decode", "is_protobuf", "message", "to_json"]
