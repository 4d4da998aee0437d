"""The committed gRPC stubs are what grpcio-tools generates from the committed proto."""

from __future__ import annotations

import shutil
from pathlib import Path

from grpc_tools import protoc

from sandboxer.metering.podresources.model import PodAllocation, devices_by_holder, pods_from_map

PKG = Path("sandboxer/metering/podresources")


def test_regenerating_the_stubs_gives_the_same_bytes(repo_root: Path, tmp_path: Path) -> None:
    source = repo_root / "operator"
    (tmp_path / PKG).mkdir(parents=True)
    shutil.copy(source / PKG / "api.proto", tmp_path / PKG / "api.proto")
    args = ["protoc", f"-I{tmp_path}", f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}"]
    assert protoc.main([*args, str(PKG / "api.proto")]) == 0
    for name in ("api_pb2.py", "api_pb2_grpc.py"):
        assert (tmp_path / PKG / name).read_bytes() == (source / PKG / name).read_bytes(), (
            f"{PKG / name} is stale: run `make podresources-stubs` and commit the result"
        )


def test_proto_keeps_the_kubelet_names_and_field_numbers() -> None:
    from sandboxer.metering.podresources import api_pb2

    service = api_pb2.DESCRIPTOR.services_by_name["PodResourcesLister"]
    assert service.full_name == "v1.PodResourcesLister"
    assert service.methods_by_name["List"].input_type.full_name == "v1.ListPodResourcesRequest"
    fields = {
        (m, f.name): f.number
        for m in (
            "ListPodResourcesResponse",
            "PodResources",
            "ContainerResources",
            "ContainerDevices",
        )
        for f in api_pb2.DESCRIPTOR.message_types_by_name[m].fields
    }
    assert fields == {
        ("ListPodResourcesResponse", "pod_resources"): 1,
        ("PodResources", "name"): 1,
        ("PodResources", "namespace"): 2,
        ("PodResources", "containers"): 3,
        ("ContainerResources", "name"): 1,
        ("ContainerResources", "devices"): 2,
        ("ContainerDevices", "resource_name"): 1,
        ("ContainerDevices", "device_ids"): 2,
    }


def test_device_holders_from_an_allocation_map() -> None:
    pods = pods_from_map({
        ("team-a", "nb-0"): {"nvidia.com/gpu": ["GPU-1", "GPU-2"], "cpu-vendor.com/x": ["c0"]},
        ("team-b", "nb-0"): {"nvidia.com/mig-1g.10gb": ["MIG-1"]},
    })  # fmt: skip
    assert isinstance(pods[0], PodAllocation)
    assert devices_by_holder(pods) == {
        "GPU-1": ("team-a", "nb-0"),
        "GPU-2": ("team-a", "nb-0"),
        "MIG-1": ("team-b", "nb-0"),
    }
