"""The NVML probe on a real NVIDIA GPU (skipped without one, see conftest.py)."""

from __future__ import annotations

import time

import pytest

from sandboxer.metering.nvml import NvmlProbe

# Explicit: tests/gpu/conftest.py's hook can run before the root conftest adds the marker.
pytestmark = pytest.mark.gpu


def test_real_gpus_enumerate_and_sample_plausibly() -> None:
    probe = NvmlProbe()
    try:
        started = time.perf_counter()
        first = probe.sample()  # includes nvmlInit and the one-off static reads
        init_ms = (time.perf_counter() - started) * 1000
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            second = probe.sample()
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        probe.close()

    assert first, "NVML initialised but reported no device"
    assert [d.uuid for d in second] == [d.uuid for d in first]
    for device in second:
        assert device.uuid.startswith(("GPU-", "MIG-")), device.uuid
        assert device.state == "Healthy", device.message
        if device.memory_total_bytes is not None and device.memory_used_bytes is not None:
            assert 0 <= device.memory_used_bytes <= device.memory_total_bytes
        if device.utilization_percent is not None:
            assert 0 <= device.utilization_percent <= 100
        if device.power_watts is not None:
            assert 0 < device.power_watts < 2000
        for proc in device.processes:
            assert proc.pid > 0
    before = {d.uuid: d.energy_millijoules for d in first}
    for device in second:
        if device.energy_millijoules is not None and before[device.uuid] is not None:
            assert device.energy_millijoules >= before[device.uuid]  # type: ignore[operator]

    calls_per_sample = sum(6 if d.parent_uuid is None else 4 for d in second) + 1
    best = min(timings)
    print(
        f"\nNVML: {len(second)} devices ({', '.join(sorted({d.model or '?' for d in second}))}); "
        f"first sample incl. init {init_ms:.2f} ms; sample {best:.3f} ms best / "
        f"{sorted(timings)[len(timings) // 2]:.3f} ms median; "
        f"~{best / calls_per_sample * 1000:.0f} us per NVML call"
    )
