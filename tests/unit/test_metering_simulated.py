from __future__ import annotations

import pytest

from sandboxer.metering.probe import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NOT_SUPPORTED,
    ProbeUnavailable,
    ProcessSample,
)
from sandboxer.metering.simulated import SimulatedNVML, Trace, make_gpus, trace_source


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_devices_have_stable_unique_uuids_per_node() -> None:
    a, b = make_gpus(8, node="node-a"), make_gpus(8, node="node-b")
    uuids = {g.uuid for g in a} | {g.uuid for g in b}
    assert len(uuids) == 16
    assert all(u.startswith("GPU-") for u in uuids)
    assert [g.uuid for g in make_gpus(8, node="node-a")] == [g.uuid for g in a]


def test_utilization_callback_drives_duty_cycle_processes_and_energy() -> None:
    clock = Clock()
    gpus = make_gpus(2, node="n", model="NVIDIA A100-SXM4-80GB")  # no GPM: the duty cycle
    levels = {gpus[0].uuid: 100.0}
    sim = SimulatedNVML(gpus, utilization=lambda uuid: levels.get(uuid, 0.0), clock=clock)
    sim.sample()
    clock.now = 10.0
    busy, idle = sim.sample()
    assert (busy.utilization_percent, busy.utilization_signal) == (100.0, "DutyCycle")
    assert len(busy.processes) == 1
    assert idle.processes == ()
    assert busy.energy_millijoules == pytest.approx(700 * 10 * 1000)
    assert idle.energy_millijoules == pytest.approx(70 * 10 * 1000)
    assert busy.power_watts == 700
    assert idle.power_watts == 70


def test_scripted_trace() -> None:
    clock = Clock()
    gpus = make_gpus(1, node="n")
    trace = Trace([(0, 10.0), (60, 90.0), (120, 0.0)])
    sim = SimulatedNVML(gpus, utilization=trace_source({gpus[0].uuid: trace}, clock), clock=clock)
    seen = []
    for t in (0, 59, 60, 119, 500):
        clock.now = t
        seen.append(sim.sample()[0].utilization_percent)
    assert seen == [10.0, 10.0, 90.0, 90.0, 0.0]


def test_mig_devices_report_process_presence_not_duty_cycle() -> None:
    gpus = make_gpus(1, node="n", migs_per_gpu=3)
    migs = gpus[0].migs
    sim = SimulatedNVML(gpus, utilization={migs[0].uuid: 40.0})
    sim.set_processes(migs[2].uuid, [ProcessSample(pid=1234, used_memory_bytes=5)])
    parent, *children = sim.sample()
    assert parent.utilization_percent is None
    assert not parent.is_mig
    assert [c.parent_uuid for c in children] == [parent.uuid] * 3
    assert [c.utilization_signal for c in children] == ["ProcessPresence"] * 3
    assert [c.utilization_percent for c in children] == [100.0, 0.0, 100.0]
    assert children[2].processes == (ProcessSample(1234, 5),)


def test_injected_errors_surface_like_nvml() -> None:
    gpus = make_gpus(2, node="n")
    sim = SimulatedNVML(gpus)
    sim.inject_error(NVML_ERROR_GPU_IS_LOST, gpus[1].uuid)
    healthy, lost = sim.sample()
    assert healthy.state == "Healthy"
    assert lost.state == "Lost"
    assert lost.message
    assert "lost" in lost.message
    sim.clear_error(gpus[1].uuid)
    assert sim.sample()[1].state == "Healthy"

    sim.inject_error(NVML_ERROR_NOT_SUPPORTED, gpus[0].uuid, times=1)
    first = sim.sample()[0]
    assert first.state == "Healthy"
    assert first.utilization_percent is None
    assert first.energy_millijoules is None
    assert sim.sample()[0].utilization_percent == 0.0

    sim.inject_error(NVML_ERROR_DRIVER_NOT_LOADED, times=1)
    with pytest.raises(ProbeUnavailable) as info:
        sim.sample()
    assert info.value.reason == "DriverNotLoaded"
    assert len(sim.sample()) == 2


def test_energy_reset_like_a_driver_reload() -> None:
    clock = Clock()
    gpus = make_gpus(1, node="n")
    sim = SimulatedNVML(gpus, clock=clock)
    sim.sample()
    clock.now = 10
    before = sim.sample()[0].energy_millijoules or 0
    sim.reset_energy(gpus[0].uuid)
    clock.now = 11
    after = sim.sample()[0].energy_millijoules or 0
    assert after < before


def test_hopper_gpus_and_their_mig_instances_report_gpm_sm_activity_from_the_second_sample() -> (
    None
):
    h100 = make_gpus(1, node="n")[0]
    a100 = make_gpus(1, node="m", model="NVIDIA A100-SXM4-40GB", migs_per_gpu=1)[0]
    h100_mig = make_gpus(1, node="k", migs_per_gpu=2)[0]
    utilization = {h100.uuid: 30.0, a100.migs[0].uuid: 0.0, h100_mig.migs[0].uuid: 0.0}
    utilization[h100_mig.migs[1].uuid] = 70.0
    sim = SimulatedNVML([h100, a100, h100_mig], utilization=utilization)
    sim.set_processes(h100_mig.migs[0].uuid, [ProcessSample(pid=7, used_memory_bytes=2**29)])
    first = {d.uuid: d for d in sim.sample()}
    # Nothing to compare a first GPM sample with: the duty cycle, and presence on MIG.
    assert first[h100.uuid].utilization_signal == "DutyCycle"
    assert first[h100_mig.migs[0].uuid].utilization_signal == "ProcessPresence"
    second = {d.uuid: d for d in sim.sample()}
    assert (second[h100.uuid].utilization_percent, second[h100.uuid].utilization_signal) == (
        30.0,
        "SmActivity",
    )
    # An instance holding an idle CUDA context reads 0 %, not "busy because a process exists".
    idle, busy = (second[m.uuid] for m in h100_mig.migs)
    assert (idle.utilization_percent, idle.utilization_signal, idle.processes) == (
        0.0, "SmActivity", (ProcessSample(7, 2**29),),
    )  # fmt: skip
    assert (busy.utilization_percent, busy.utilization_signal) == (70.0, "SmActivity")
    # The A100 has no GPM: its instance stays on presence.
    assert second[a100.migs[0].uuid].utilization_signal == "ProcessPresence"
