"""The PodResources client against a fake kubelet gRPC server on a real unix socket."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandboxer.metering.podresources.client import PodResourcesClient, PodResourcesUnavailable
from sandboxer.metering.podresources.fake_kubelet import FakeKubelet
from sandboxer.metering.podresources.model import (
    ContainerAllocation,
    DeviceAllocation,
    PodAllocation,
    pods_from_map,
)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Unix socket paths must stay under ~108 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="podres-") as path:
        yield Path(path)


@pytest.fixture
async def kubelet(socket_dir: Path) -> AsyncIterator[FakeKubelet]:
    fake = FakeKubelet(
        pods_from_map(
            {
                ("team-a", "alice-nb-0"): {"nvidia.com/gpu": ["GPU-1", "GPU-2"]},
                ("team-b", "bob-nb-0"): {"nvidia.com/mig-1g.10gb": ["MIG-7"]},
            }
        )
    )
    await fake.start(str(socket_dir / "kubelet.sock"))
    yield fake
    await fake.stop()


async def test_list_maps_pods_containers_and_devices(kubelet: FakeKubelet) -> None:
    assert kubelet.socket_path is not None
    client = PodResourcesClient(kubelet.socket_path, timeout=5)
    try:
        pods = await client.list()
        assert [(p.namespace, p.name) for p in pods] == [
            ("team-a", "alice-nb-0"),
            ("team-b", "bob-nb-0"),
        ]
        assert pods[0].device_ids() == ["GPU-1", "GPU-2"]
        assert pods[1].containers[0].devices[0].resource_name == "nvidia.com/mig-1g.10gb"

        devices = (DeviceAllocation("x/y", ("d",)),)
        kubelet.set_pods([PodAllocation("ns", "p", (ContainerAllocation("c", devices),))])
        (pod,) = await client.list()
        assert pod.device_ids() == []  # not an NVIDIA resource
        assert pod.device_ids(prefix="x/") == ["d"]
        assert kubelet.calls == 2
    finally:
        await client.close()


async def test_missing_socket_is_a_clear_error(socket_dir: Path) -> None:
    client = PodResourcesClient(str(socket_dir / "absent.sock"), timeout=1)
    try:
        with pytest.raises(PodResourcesUnavailable, match=r"absent\.sock.*pod-resources"):
            await client.list()
    finally:
        await client.close()
