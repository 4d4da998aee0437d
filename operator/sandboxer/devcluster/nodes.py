"""Simulated GPU nodes: Node objects as GPU feature discovery and the device plugin label them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# gpu.product labels as NVIDIA GPU feature discovery writes them.
PRODUCTS = {
    "H100": "NVIDIA-H100-80GB-HBM3",
    "H200": "NVIDIA-H200",
    "A100": "NVIDIA-A100-SXM4-80GB",
    "L4": "NVIDIA-L4",
    "L40S": "NVIDIA-L40S",
    "T4": "Tesla-T4",
}
MEMORY_MIB = {"H100": 81559, "H200": 143771, "A100": 81920, "L4": 23034, "L40S": 46068, "T4": 15360}
# MIG slices per GPU for the profiles of an 80 GB part.
MIG_SLICES = {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1}
_NS = uuid.UUID("6f1c1a52-8f5e-4b8a-9d7e-2f5b6c1d0e11")


@dataclass(frozen=True)
class NodeSpec:
    """What a simulated node has; `devices` maps a resource name to its device IDs (UUIDs)."""

    name: str
    model: str
    gpus: int
    mig_profile: str | None = None
    cpu: str = "64"
    memory: str = "512Gi"
    taints: tuple[Mapping[str, str], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def gpu_resource(self) -> str:
        return f"nvidia.com/mig-{self.mig_profile}" if self.mig_profile else "nvidia.com/gpu"

    def gpu_uuids(self) -> list[str]:
        return [f"GPU-{uuid.uuid5(_NS, f'{self.name}/{i}')}" for i in range(self.gpus)]

    def mig_uuids(self, gpu_uuid: str) -> list[str]:
        """The MIG devices of one GPU (none when the node is not partitioned)."""
        if not self.mig_profile:
            return []
        if self.mig_profile not in MIG_SLICES:
            known = ", ".join(MIG_SLICES)
            raise ValueError(f"unknown MIG profile {self.mig_profile!r}; known: {known}")
        return [
            f"MIG-{uuid.uuid5(_NS, f'{gpu_uuid}/{self.mig_profile}/{i}')}"
            for i in range(MIG_SLICES[self.mig_profile])
        ]

    def devices(self) -> dict[str, list[str]]:
        gpus = self.gpu_uuids()
        if not self.mig_profile:
            return {"nvidia.com/gpu": gpus}
        return {self.gpu_resource: [mig for gpu in gpus for mig in self.mig_uuids(gpu)]}


def product(model: str) -> str:
    return PRODUCTS.get(model, f"NVIDIA-{model}")


def build_node(spec: NodeSpec) -> dict[str, Any]:
    devices = spec.devices()
    capacity: dict[str, str] = {"cpu": spec.cpu, "memory": spec.memory, "pods": "110"}
    for resource, ids in devices.items():
        capacity[resource] = str(len(ids))
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product(spec.model),
        "nvidia.com/gpu.count": str(spec.gpus),
        "nvidia.com/gpu.memory": str(MEMORY_MIB.get(spec.model, 81920)),
        "sandboxer.io/gpu-model": spec.model,
    }
    if spec.mig_profile:
        labels["nvidia.com/mig.strategy"] = "mixed"
        labels["nvidia.com/mig.config"] = f"all-{spec.mig_profile}"
        labels[f"nvidia.com/mig-{spec.mig_profile}.count"] = str(len(devices[spec.gpu_resource]))
    labels.update(spec.labels)
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"taints": [dict(t) for t in spec.taints]} if spec.taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status (simulated)",
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.35.0-sandboxer-sim",
                "containerRuntimeVersion": "containerd://2.0.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": spec.name},
            ],
        },
    }
    return node
