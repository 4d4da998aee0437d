"""Simulated NVML: the same `GPUBackend` interface as the real probe, for the playground and tests.

Utilization comes from a callback per device UUID (the playground maps it from the sandbox
annotation `sim.sandboxer.io/gpu-utilization` through its fake kubelet's allocations), a plain
mapping, or scripted traces. Energy integrates simulated power over the injected clock, so energy
counters behave like NVML's (monotonic mJ since "driver load", reset by `reset_energy`). Errors
are injected as NVML return codes and surface exactly as the real probe reports them.
"""

from __future__ import annotations

import bisect
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sandboxer.api.nodereport import UtilizationSignal
from sandboxer.metering.probe import (
    NVML_ERROR_NOT_SUPPORTED,
    DeviceSample,
    ProcessSample,
    device_state_for,
    presence_utilization,
    unavailable_from_code,
)

UtilizationSource = Callable[[str], float | None]  # device UUID -> percent (None: unknown)
GiB = 2**30


@dataclass
class SimMIG:
    uuid: str
    profile: str = "1g.10gb"
    memory_total_bytes: int = 10 * GiB


@dataclass
class SimGPU:
    uuid: str
    index: int
    model: str = "NVIDIA H100 80GB HBM3"
    memory_total_bytes: int = 80 * GiB
    idle_watts: float = 70.0
    max_watts: float = 700.0
    migs: list[SimMIG] = field(default_factory=list)


def make_gpus(
    count: int, *, model: str = "NVIDIA H100 80GB HBM3", node: str = "sim", migs_per_gpu: int = 0
) -> list[SimGPU]:
    """`count` GPUs with stable, node-unique UUIDs (like `GPU-<uuid>` / `MIG-<uuid>`)."""

    def uid(text: str) -> str:
        h = f"{zlib.crc32(text.encode()):08x}{zlib.crc32(text[::-1].encode()):08x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-0000-{zlib.adler32(text.encode()):012x}"

    return [
        SimGPU(
            uuid=f"GPU-{uid(f'{node}/{i}')}",
            index=i,
            model=model,
            migs=[SimMIG(uuid=f"MIG-{uid(f'{node}/{i}/{m}')}") for m in range(migs_per_gpu)],
        )
        for i in range(count)
    ]


IDLE_CONTEXT_BYTES = 512 * 1024 * 1024  # a CUDA context and cached allocations, kernel idle
# GPU families whose NVML offers GPM (Hopper and Blackwell); others have no SM activity.
GPM_FAMILIES = ("H100", "H200", "H800", "H20", "GH200", "B100", "B200", "GB200")


def has_gpm(model: str) -> bool:
    return any(family in model.split() for family in GPM_FAMILIES)


@dataclass(frozen=True)
class Trace:
    """A scripted utilization: `steps` of (seconds since start, percent), held until the next."""

    steps: Sequence[tuple[float, float]]

    def at(self, seconds: float) -> float:
        times = [t for t, _ in self.steps]
        pos = bisect.bisect_right(times, seconds) - 1
        return self.steps[pos][1] if pos >= 0 else 0.0


def trace_source(
    traces: Mapping[str, Trace], clock: Callable[[], float], start: float | None = None
) -> UtilizationSource:
    origin = clock() if start is None else start
    return lambda uuid: traces[uuid].at(clock() - origin) if uuid in traces else 0.0


@dataclass
class _Fault:
    code: int
    remaining: int | None  # None: until cleared


class SimulatedNVML:
    """`GPUBackend` over simulated devices (GPUs and MIG devices)."""

    def __init__(
        self,
        gpus: Sequence[SimGPU],
        *,
        utilization: UtilizationSource | Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gpus = list(gpus)
        self._clock = clock
        self._utilization: dict[str, float] = {}
        self._source: UtilizationSource | None = None
        if callable(utilization):
            self._source = utilization
        elif utilization is not None:
            self._utilization.update(utilization)
        self._processes: dict[str, tuple[ProcessSample, ...]] = {}
        # Like a CUDA context: from a device's first use by a holder until the holder lets go.
        self._contexts: dict[str, str | None] = {}  # uuid -> the holder that opened it
        self._holder: Callable[[str], str | None] | None = None
        self._faults: dict[str | None, _Fault] = {}
        self._energy_mj: dict[str, float] = {g.uuid: 0.0 for g in self.gpus}
        self._last: float | None = None
        self.calls = 0  # samples taken; tests and benchmarks read it
        self._gpm_sampled: set[str] = set()  # devices with a first GPM sample to compare with

    # --- driving the simulation -----------------------------------------------------------
    def set_utilization(self, uuid: str, percent: float) -> None:
        self._utilization[uuid] = percent

    def set_source(
        self,
        source: UtilizationSource | None,
        holder: Callable[[str], str | None] | None = None,
    ) -> None:
        """Utilization per device, and (optional) who holds each device: a context opened by
        one holder closes when the device is free or held by someone else."""
        self._source = source
        self._holder = holder

    def release(self, uuid: str) -> None:
        """The process holding the device's context ended (the pod stopped)."""
        self._contexts.pop(uuid, None)

    def set_processes(self, uuid: str, processes: Sequence[ProcessSample] | None) -> None:
        """Explicit compute processes (host PIDs); None returns to synthetic ones."""
        if processes is None:
            self._processes.pop(uuid, None)
        else:
            self._processes[uuid] = tuple(processes)

    def inject_error(self, code: int, uuid: str | None = None, *, times: int | None = None) -> None:
        """Fail the next `times` samples (None: always) of one device, or of NVML (no uuid)."""
        self._faults[uuid] = _Fault(code, times)

    def clear_error(self, uuid: str | None = None) -> None:
        self._faults.pop(uuid, None)

    def reset_energy(self, uuid: str) -> None:
        """What a driver reload or GPU reset does to NVML's total energy counter."""
        self._energy_mj[uuid] = 0.0

    def close(self) -> None:
        pass

    # --- GPUBackend ---------------------------------------------------------------------------
    def _fault(self, key: str | None) -> int | None:
        fault = self._faults.get(key)
        if fault is None:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._faults[key]
        return fault.code

    def _gpm_ready(self, model: str, uuid: str) -> bool:
        """As real GPM: a value from a device's second sample on (it needs two to compare)."""
        if not has_gpm(model):
            return False
        if uuid in self._gpm_sampled:
            return True
        self._gpm_sampled.add(uuid)
        return False

    def _util(self, uuid: str) -> float:
        value = self._source(uuid) if self._source is not None else None
        if value is None:
            value = self._utilization.get(uuid, 0.0)
        return min(max(float(value), 0.0), 100.0)

    def _procs(self, uuid: str, util: float) -> tuple[ProcessSample, ...]:
        if uuid in self._processes:
            return self._processes[uuid]
        # As on a real node: a notebook that used the GPU once (imported torch, ran a cell)
        # keeps its CUDA context, so NVML lists its process and some memory at 0 % too. The
        # PID is synthetic (no cgroup); attribution comes from the kubelet's allocation.
        holder = self._holder(uuid) if self._holder is not None else None
        if uuid in self._contexts and (self._holder is not None and self._contexts[uuid] != holder):
            del self._contexts[uuid]  # the device was freed or handed to another pod
        if util > 0 and (self._holder is None or holder is not None):
            self._contexts.setdefault(uuid, holder)
        if uuid not in self._contexts:
            return ()
        pid = 100_000 + zlib.crc32(f"{uuid}/{self._contexts[uuid]}".encode()) % 800_000
        memory = 2 * GiB if util > 0 else IDLE_CONTEXT_BYTES
        return (ProcessSample(pid=pid, used_memory_bytes=memory),)

    def sample(self) -> list[DeviceSample]:
        self.calls += 1
        now = self._clock()
        dt = 0.0 if self._last is None else max(now - self._last, 0.0)
        self._last = now
        code = self._fault(None)
        if code is not None:
            raise unavailable_from_code(code, "simulated")
        out: list[DeviceSample] = []
        for gpu in self.gpus:
            out.extend(self._sample_gpu(gpu, dt))
        return out

    def _sample_gpu(self, gpu: SimGPU, dt: float) -> list[DeviceSample]:
        code = self._fault(gpu.uuid)
        if code is not None and code != NVML_ERROR_NOT_SUPPORTED:
            state, message = device_state_for(code, "simulated")
            return [DeviceSample(uuid=gpu.uuid, index=gpu.index, model=gpu.model, state=state,
                                 message=message)]  # fmt: skip
        unsupported = code == NVML_ERROR_NOT_SUPPORTED
        if gpu.migs:
            children = [self._sample_mig(gpu, mig) for mig in gpu.migs]
            busy = sum(c.utilization_percent or 0.0 for c in children) / len(children)
            util: float | None = None
            procs: tuple[ProcessSample, ...] = ()
            used = sum(c.memory_used_bytes or 0 for c in children)
        else:
            children = []
            busy = self._util(gpu.uuid)
            util = None if unsupported else busy
            procs = self._procs(gpu.uuid, busy)
            used = sum(p.used_memory_bytes or 0 for p in procs)
        signal: UtilizationSignal = "DutyCycle" if util is not None else "None"
        if util is not None and self._gpm_ready(gpu.model, gpu.uuid):
            signal = "SmActivity"
        power = gpu.idle_watts + (gpu.max_watts - gpu.idle_watts) * busy / 100.0
        self._energy_mj[gpu.uuid] += power * dt * 1000.0
        head = DeviceSample(
            uuid=gpu.uuid,
            index=gpu.index,
            model=gpu.model,
            memory_total_bytes=gpu.memory_total_bytes,
            memory_used_bytes=used,
            utilization_percent=util,
            utilization_signal=signal,
            energy_millijoules=None if unsupported else int(self._energy_mj[gpu.uuid]),
            power_watts=None if unsupported else power,
            processes=procs,
        )
        return [head, *children]

    def _sample_mig(self, gpu: SimGPU, mig: SimMIG) -> DeviceSample:
        code = self._fault(mig.uuid)
        if code is not None:
            state, message = device_state_for(code, "simulated")
            return DeviceSample(uuid=mig.uuid, model=gpu.model, parent_uuid=gpu.uuid,
                                mig_profile=mig.profile, state=state, message=message)  # fmt: skip
        busy = self._util(mig.uuid)
        procs = self._procs(mig.uuid, busy)
        used = sum(p.used_memory_bytes or 0 for p in procs)
        # Like real MIG: no duty cycle; GPM per instance on Hopper and newer, else only
        # process presence.
        util: float | None
        signal: UtilizationSignal
        if self._gpm_ready(gpu.model, mig.uuid):
            util, signal = busy, "SmActivity"
        else:
            util, signal = presence_utilization(procs, used)
        return DeviceSample(
            uuid=mig.uuid,
            model=gpu.model,
            parent_uuid=gpu.uuid,
            mig_profile=mig.profile,
            memory_total_bytes=mig.memory_total_bytes,
            memory_used_bytes=used,
            utilization_percent=util,
            utilization_signal=signal,
            processes=procs,
        )
