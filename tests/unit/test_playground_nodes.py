"""The playground's node agents see the devices the dev cluster's scheduler hands out."""

from __future__ import annotations

import pytest

from sandboxer.devcluster.nodeagents import parse_percent, pod_allocation, simulated_gpus
from sandboxer.devcluster.nodes import NodeSpec
from sandboxer.devcluster.scheduler import Allocation


def test_simulated_gpus_use_the_scheduler_uuids() -> None:
    spec = NodeSpec("gpu-node-0", "H100", 2)
    gpus = simulated_gpus(spec)
    assert [g.uuid for g in gpus] == spec.devices()["nvidia.com/gpu"]
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].model == "NVIDIA H100 80GB HBM3"
    assert all(not g.migs for g in gpus)


def test_simulated_mig_devices_use_the_scheduler_uuids() -> None:
    spec = NodeSpec("mig-node-0", "H100", 2, mig_profile="1g.10gb")
    gpus = simulated_gpus(spec)
    migs = [m.uuid for g in gpus for m in g.migs]
    assert migs == spec.devices()["nvidia.com/mig-1g.10gb"]
    assert len(migs) == 14 and {m.profile for g in gpus for m in g.migs} == {"1g.10gb"}


def test_pod_allocation_is_what_the_kubelet_reports() -> None:
    alloc = Allocation("uid-1", "team", "nb-0", (("nvidia.com/gpu", ("GPU-a", "GPU-b")),))
    pod = pod_allocation(alloc)
    assert (pod.namespace, pod.name) == ("team", "nb-0")
    assert pod.device_ids() == ["GPU-a", "GPU-b"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("80", 80.0), ("12.5", 12.5), ("150", 100.0), ("-3", 0.0), ("busy", None), ("", None)],
)
def test_parse_percent(raw: str, expected: float | None) -> None:
    assert parse_percent(raw) == expected
