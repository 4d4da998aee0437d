"""Where a simulated pod's container ports really listen.

A real kubelet gives each pod an IP; the playground's processes (a Jupyter Server per notebook pod)
listen on loopback ports instead. The simulated kubelet records them here, and the embedded API's
``pods/portforward`` and ``services/proxy`` subresources dial what it finds.
"""

from __future__ import annotations

import threading


class PodEndpoints:
    """(namespace, pod, container port) -> (host, port), safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_port: dict[tuple[str, str, int], tuple[str, int]] = {}

    def set(self, namespace: str, pod: str, container_port: int, host: str, port: int) -> None:
        with self._lock:
            self._by_port[(namespace, pod, container_port)] = (host, port)

    def get(self, namespace: str, pod: str, container_port: int) -> tuple[str, int] | None:
        with self._lock:
            return self._by_port.get((namespace, pod, container_port))

    def drop_pod(self, namespace: str, pod: str) -> None:
        with self._lock:
            for key in [k for k in self._by_port if k[:2] == (namespace, pod)]:
                del self._by_port[key]
