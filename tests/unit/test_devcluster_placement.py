from __future__ import annotations

from typing import Any

import pytest

from sandboxer.devcluster.placement import (
    NodeView,
    filter_node,
    pod_requests,
    unschedulable_message,
)
from sandboxer.devcluster.quantities import parse_quantity

NODE = NodeView(
    name="n",
    labels={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "zone": "a"},
    taints=({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},),
    allocatable={"cpu": 64.0, "memory": 512 * 2.0**30, "nvidia.com/gpu": 8.0},
    used={"nvidia.com/gpu": 6.0},
)
TOLERATE = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def pod(gpus: int, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "c",
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "500m"}},
    }
    return {"spec": {"containers": [container], "tolerations": TOLERATE, **spec}}


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("8", 8.0), ("64Gi", 64 * 2.0**30), ("1e3", 1000.0), ("2k", 2000.0)],
)
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == value


def test_bad_quantity_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="500m"):
        parse_quantity("lots")


def test_limits_stand_in_for_requests() -> None:
    assert pod_requests(pod(2)) == {"nvidia.com/gpu": 2.0, "cpu": 0.5}


def test_fits_with_toleration() -> None:
    assert filter_node(pod(2), NODE, pod_requests(pod(2))) == []


def test_insufficient_gpu() -> None:
    assert filter_node(pod(3), NODE, pod_requests(pod(3))) == ["Insufficient nvidia.com/gpu"]


def test_untolerated_taint() -> None:
    p = pod(1, tolerations=[])
    assert filter_node(p, NODE, pod_requests(p)) == [
        "node(s) had untolerated taint {nvidia.com/gpu: present}"
    ]


def test_node_selector_and_affinity() -> None:
    p = pod(1, nodeSelector={"zone": "b"})
    assert filter_node(p, NODE, {}) == ["node(s) didn't match Pod's node affinity/selector"]
    term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }
    assert filter_node(pod(1, affinity=affinity), NODE, {}) == []


def test_message_like_kube_scheduler() -> None:
    message = unschedulable_message(
        3,
        {"Insufficient nvidia.com/gpu": 2, "node(s) didn't match Pod's node affinity/selector": 1},
    )
    assert message == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "2 Insufficient nvidia.com/gpu."
    )
    assert unschedulable_message(0, {}) == "no nodes available to schedule pods"
