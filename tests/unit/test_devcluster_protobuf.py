"""The compiled Kubernetes descriptors match the committed protos; values convert as Go's JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandboxer.devcluster import protobuf
from sandboxer.devcluster.protobuf_gen import compile_descriptors, zero_omitted

K8SPROTO = protobuf.DESCRIPTORS.parent


def build(name: str, **fields: Any) -> Any:
    cls = protobuf.message(name)
    assert cls is not None, name
    return cls(**fields)


def test_recompiling_the_committed_protos_gives_the_committed_descriptors(tmp_path: Path) -> None:
    protos = [str(p.relative_to(K8SPROTO)) for p in K8SPROTO.rglob("generated.proto")]
    assert len(protos) == 15
    assert compile_descriptors(K8SPROTO, tmp_path / "d.binpb", protos) == 0
    assert (tmp_path / "d.binpb").read_bytes() == protobuf.DESCRIPTORS.read_bytes(), (
        "k8sproto/descriptors.binpb is stale: run `make k8s-proto` and commit the result"
    )


def test_every_zero_omitted_field_names_a_real_proto_field() -> None:
    table = json.loads((K8SPROTO / "omitempty.json").read_text())
    assert table["k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["creationTimestamp"] == (
        "omitzero"
    )
    for message, fields in table.items():
        cls = protobuf.message(message)
        assert cls is not None, message
        assert set(fields) <= set(cls.DESCRIPTOR.fields_by_name), message


def test_struct_tags_decide_what_go_leaves_out() -> None:
    source = """
type DeploymentSpec struct {
	ProbeHandler `json:",inline" protobuf:"bytes,1,opt,name=handler"`
	Replicas *int32 `json:"replicas,omitempty" protobuf:"varint,1,opt,name=replicas"`
	MinReady int32 `json:"minReady,omitempty" protobuf:"varint,5,opt,name=minReady"`
	Template v1.PodTemplateSpec `json:"template" protobuf:"bytes,3,opt,name=template"`
	Stamp Time `json:"stamp,omitempty,omitzero" protobuf:"bytes,8,opt,name=stamp"`
	Names []string `json:"names,omitempty" protobuf:"bytes,9,rep,name=names"`
}
"""
    assert zero_omitted(source) == {
        "DeploymentSpec": {"handler": "inline", "minReady": "omitempty", "stamp": "omitzero"}
    }


def test_special_types_convert_as_their_go_json_marshallers() -> None:
    meta = "k8s.io.apimachinery.pkg.apis.meta.v1"
    pod = build(
        "k8s.io.api.core.v1.Pod",
        metadata={"name": "p", "creationTimestamp": {"seconds": 1764633600, "nanos": 5}},
        spec={
            "containers": [{
                "name": "c",
                "resources": {"limits": {"nvidia.com/gpu": {"string": "2"}}},
                "ports": [{"containerPort": 8888}],
                "readinessProbe": {"handler": {"httpGet": {"port": {"type": 1, "strVal": "http"}}}},
                "livenessProbe": {"handler": {"httpGet": {"port": {"type": 0, "intVal": 8888}}}},
                "securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 0},
            }],
        },
    )  # fmt: skip
    out = protobuf.to_json(pod)
    assert out["metadata"]["creationTimestamp"] == "2025-12-02T00:00:00Z"  # seconds only
    container = out["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert container["livenessProbe"]["httpGet"]["port"] == 8888
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "runAsUser": 0}

    lease = build(
        "k8s.io.api.coordination.v1.Lease",
        spec={"renewTime": {"seconds": 1764633600, "nanos": 123456789}},
    )
    assert protobuf.to_json(lease)["spec"]["renewTime"] == "2025-12-02T00:00:00.123456Z"
    secret = build("k8s.io.api.core.v1.Secret", data={"k": b"\x00\xff"}, type="")
    assert protobuf.to_json(secret) == {"data": {"k": "AP8="}}  # empty non-pointer type left out
    fields = build(f"{meta}.ManagedFieldsEntry", fieldsV1={"Raw": b'{"f:data":{}}'})
    assert protobuf.to_json(fields)["fieldsV1"] == {"f:data": {}}
    empty_time = build(f"{meta}.Time")
    assert protobuf._special(empty_time.DESCRIPTOR, empty_time) is None


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(0, "0s"), (1, "1ns"), (1500, "1.5µs"), (250_000_000, "250ms"), (1_500_000_000, "1.5s"),
     (90 * 10**9, "1m30s"), (3600 * 10**9, "1h0m0s"), (-(3723 * 10**9 + 5 * 10**8), "-1h2m3.5s")],
)  # fmt: skip
def test_durations_print_as_go_does(nanoseconds: int, text: str) -> None:
    assert protobuf.go_duration(nanoseconds) == text


def test_group_names_map_to_upstream_packages() -> None:
    assert protobuf.proto_package("v1") == "k8s.io.api.core.v1"
    assert protobuf.proto_package("rbac.authorization.k8s.io/v1") == "k8s.io.api.rbac.v1"
    assert protobuf.proto_package("apiextensions.k8s.io/v1").startswith(
        "k8s.io.apiextensions_apiserver."
    )
    assert protobuf.message(protobuf.proto_package("apps/v1") + ".StatefulSet") is not None
