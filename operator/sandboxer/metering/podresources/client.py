"""Client of the kubelet PodResources `v1.PodResourcesLister/List` over its unix socket."""

from __future__ import annotations

from typing import Any

import grpc

from sandboxer.metering.podresources import api_pb2 as _api_pb2
from sandboxer.metering.podresources import api_pb2_grpc as _api_pb2_grpc
from sandboxer.metering.podresources.model import (
    ContainerAllocation,
    DeviceAllocation,
    PodAllocation,
)

# Generated stubs are untyped; they are used through Any in this module only.
api_pb2: Any = _api_pb2
api_pb2_grpc: Any = _api_pb2_grpc

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
DEFAULT_TIMEOUT = 10.0  # seconds; what dcgm-exporter uses for the same call


class PodResourcesUnavailable(Exception):
    """The kubelet could not be asked (socket missing, kubelet down, call timed out)."""


def _from_proto(response: Any) -> list[PodAllocation]:
    return [
        PodAllocation(
            namespace=pod.namespace,
            name=pod.name,
            containers=tuple(
                ContainerAllocation(
                    name=container.name,
                    devices=tuple(
                        DeviceAllocation(d.resource_name, tuple(d.device_ids))
                        for d in container.devices
                    ),
                )
                for container in pod.containers
            ),
        )
        for pod in response.pod_resources
    ]


class PodResourcesClient:
    """One long-lived channel; `list()` asks the kubelet which pod holds which device."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> Any:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"unix://{self.socket_path}")
        return api_pb2_grpc.PodResourcesListerStub(self._channel)

    async def list(self) -> list[PodAllocation]:
        try:
            response = await self._stub().List(
                api_pb2.ListPodResourcesRequest(), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise PodResourcesUnavailable(
                f"kubelet PodResources List on unix://{self.socket_path} failed "
                f"({exc.code().name}: {exc.details()}); mount /var/lib/kubelet/pod-resources "
                "into the agent and check that the kubelet is running"
            ) from exc
        return _from_proto(response)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
