from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.metering.counters import CounterBook, PodRef
from sandboxer.metering.probe import DeviceSample
from sandboxer.metering.report import build_status, health_conditions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_status_groups_pairs_by_pod_and_round_trips_the_wire_form() -> None:
    book = CounterBook(sample_interval=10, epoch="e1")
    devices = [
        DeviceSample(uuid="GPU-b", index=1, utilization_percent=20.0),
        DeviceSample(uuid="GPU-a", index=0, utilization_percent=80.0),
        DeviceSample(uuid="GPU-c", index=2, state="Lost", message="GPU is lost"),
    ]
    pod = PodRef("team-a", "nb-0", "uid-1")
    holders = {"GPU-a": pod, "GPU-b": pod, "GPU-c": PodRef("team-b", "nb-0", "uid-2")}
    for t in (0, 10):
        book.observe(T0 + timedelta(seconds=t), devices, holders)
    status = build_status(node="node-1", epoch=book.epoch, sequence=3, at=T0, devices=devices,
                          pairs=book.pairs(), sample_interval=10, report_interval=30)  # fmt: skip
    wire = status.dump()
    assert wire["epoch"] == "e1"
    assert wire["node"] == "node-1"
    assert wire["sequence"] == 3
    assert [p["name"] for p in wire["pods"]] == ["nb-0", "nb-0"]
    team_a = wire["pods"][0]
    assert team_a["uid"] == "uid-1"
    assert [g["uuid"] for g in team_a["gpus"]] == ["GPU-a", "GPU-b"]
    assert team_a["gpus"][0]["busySeconds"] == 8.0
    assert team_a["gpus"][0]["allocatedSeconds"] == 10.0
    assert wire["gpus"][2]["state"] == "Lost"
    assert GPUNodeReportStatus.model_validate(wire) == status


def test_conditions_move_only_on_change() -> None:
    first = health_conditions([], T0, nvml_error=None, kubelet_error=None, lost_gpus=[])
    again = health_conditions(first, T0 + timedelta(hours=1), nvml_error=None,
                              kubelet_error=None, lost_gpus=[])  # fmt: skip
    assert again == first
    lost = health_conditions(again, T0 + timedelta(hours=2), nvml_error=("DriverNotLoaded", "x"),
                             kubelet_error="down", lost_gpus=["GPU-c"])  # fmt: skip
    by_type = {c.type: c for c in lost}
    assert by_type["NVMLAvailable"].reason == "DriverNotLoaded"
    assert by_type["PodResourcesAvailable"].status == "False"
    assert by_type["GPUsHealthy"].message == "GPU lost: GPU-c"
    assert by_type["GPUsHealthy"].last_transition_time == T0 + timedelta(hours=2)
