"""A fake kubelet serving PodResources `List` on a unix socket, from an in-memory allocation map.

Used by the tests and by the playground's simulated nodes, so the agent always runs its real
gRPC client path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc

from sandboxer.metering.podresources import api_pb2 as _api_pb2
from sandboxer.metering.podresources import api_pb2_grpc as _api_pb2_grpc
from sandboxer.metering.podresources.model import PodAllocation

# Generated stubs are untyped; they are used through Any in this module only.
api_pb2: Any = _api_pb2
api_pb2_grpc: Any = _api_pb2_grpc


def _to_proto(pods: Iterable[PodAllocation]) -> Any:
    return api_pb2.ListPodResourcesResponse(
        pod_resources=[
            api_pb2.PodResources(
                name=pod.name,
                namespace=pod.namespace,
                containers=[
                    api_pb2.ContainerResources(
                        name=c.name,
                        devices=[
                            api_pb2.ContainerDevices(
                                resource_name=d.resource_name, device_ids=list(d.device_ids)
                            )
                            for d in c.devices
                        ],
                    )
                    for c in pod.containers
                ],
            )
            for pod in pods
        ]
    )


class _Lister(api_pb2_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    def __init__(self, kubelet: FakeKubelet) -> None:
        self._kubelet = kubelet

    async def List(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._kubelet.calls += 1
        return _to_proto(self._kubelet.pods())


class FakeKubelet:
    """Serves `pods` (a list, or a callable read on every call) until `stop()`."""

    def __init__(
        self, pods: Iterable[PodAllocation] | Callable[[], Iterable[PodAllocation]] = ()
    ) -> None:
        self._pods = pods if callable(pods) else list(pods)
        self._server: grpc.aio.Server | None = None
        self.calls = 0
        self.socket_path: str | None = None

    def pods(self) -> list[PodAllocation]:
        return list(self._pods() if callable(self._pods) else self._pods)

    def set_pods(self, pods: Iterable[PodAllocation]) -> None:
        self._pods = list(pods)

    async def start(self, socket_path: str) -> None:
        server = grpc.aio.server()
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(_Lister(self), server)
        if server.add_insecure_port(f"unix://{socket_path}") == 0:
            raise OSError(f"could not listen on unix socket {socket_path}")
        await server.start()
        self._server, self.socket_path = server, socket_path

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None
