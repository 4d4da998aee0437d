"""What the kubelet says each pod holds, in our own types (no gRPC here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Extended resources that are NVIDIA GPUs or MIG devices (nvidia.com/gpu, nvidia.com/mig-1g.10gb).
GPU_RESOURCE_PREFIX = "nvidia.com/"


@dataclass(frozen=True, slots=True)
class DeviceAllocation:
    resource_name: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContainerAllocation:
    name: str
    devices: tuple[DeviceAllocation, ...] = ()


@dataclass(frozen=True, slots=True)
class PodAllocation:
    namespace: str
    name: str
    containers: tuple[ContainerAllocation, ...] = field(default=())

    def device_ids(self, prefix: str = GPU_RESOURCE_PREFIX) -> list[str]:
        return [
            device_id
            for container in self.containers
            for devices in container.devices
            if devices.resource_name.startswith(prefix)
            for device_id in devices.device_ids
        ]


def pods_from_map(
    allocations: Mapping[tuple[str, str], Mapping[str, Sequence[str]]],
) -> list[PodAllocation]:
    """Build allocations from `{(namespace, name): {resource_name: [device ids]}}`."""
    return [
        PodAllocation(
            namespace=namespace,
            name=name,
            containers=(
                ContainerAllocation(
                    name="main",
                    devices=tuple(
                        DeviceAllocation(resource, tuple(ids))
                        for resource, ids in resources.items()
                    ),
                ),
            ),
        )
        for (namespace, name), resources in allocations.items()
    ]


def devices_by_holder(
    pods: Iterable[PodAllocation], prefix: str = GPU_RESOURCE_PREFIX
) -> dict[str, tuple[str, str]]:
    """GPU/MIG device id -> (namespace, pod name) of the pod the kubelet assigned it to."""
    return {
        device_id: (pod.namespace, pod.name) for pod in pods for device_id in pod.device_ids(prefix)
    }
