"""The real GPU backend: NVML through pynvml (nvidia-ml-py); with gpm.py, the only modules
importing pynvml.

NVML is initialised once and kept (an init costs milliseconds, a query ~0.1 ms). Each sample reads
every GPU and, on MIG-enabled GPUs, every MIG device. A failing query degrades to "not available"
(`None`) or to a device state (`Lost`, `Unsupported`, `Unknown`); only library-wide failures
(library missing, driver not loaded, no permission) raise `ProbeUnavailable`, and the next sample
tries to initialise again — so a node problem is reported, never a crash loop.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pynvml

from sandboxer.api.nodereport import UtilizationSignal
from sandboxer.metering.gpm import GpmReader
from sandboxer.metering.probe import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    DeviceSample,
    ProbeUnavailable,
    ProcessSample,
    device_state_for,
    presence_utilization,
    unavailable_from_code,
)

T = TypeVar("T")
_LIBRARY_CODES = {NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_DRIVER_NOT_LOADED}
_MIG_PROFILE = re.compile(r"MIG (\S+)\s*$")


class _DeviceFailed(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class _Static:
    """What does not change while the driver stays loaded; kept so a lost GPU keeps its UUID."""

    uuid: str
    model: str | None
    memory_total_bytes: int | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(fn: Callable[..., T], *args: Any) -> T | None:
    """Call NVML; "not supported" and "no permission" mean "not available", other errors raise."""
    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        if exc.value in (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NO_PERMISSION):
            return None
        raise _DeviceFailed(exc.value, str(exc)) from exc


def _processes(handle: Any) -> tuple[ProcessSample, ...] | None:
    procs = _optional(pynvml.nvmlDeviceGetComputeRunningProcesses, handle)
    if procs is None:
        return None
    return tuple(ProcessSample(pid=int(p.pid), used_memory_bytes=p.usedGpuMemory) for p in procs)


class NvmlProbe:
    """`GPUBackend` over the NVIDIA driver."""

    def __init__(self) -> None:
        self._initialised = False
        self._static: dict[str, _Static] = {}  # by "index" or "index/mig-index"
        self._gpm = GpmReader()

    def _init(self) -> None:
        if self._initialised:
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise unavailable_from_code(exc.value, str(exc)) from exc
        self._initialised = True

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            self._gpm.close()
            with contextlib.suppress(pynvml.NVMLError):  # shutting down anyway
                pynvml.nvmlShutdown()

    def sample(self) -> list[DeviceSample]:
        self._init()
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            if exc.value in _LIBRARY_CODES or exc.value == NVML_ERROR_NO_PERMISSION:
                self.close()  # the driver went away: initialise again next time
            raise unavailable_from_code(exc.value, str(exc)) from exc
        out: list[DeviceSample] = []
        for index in range(count):
            out.extend(self._sample_gpu(index))
        return out

    def _static_of(self, key: str, handle: Any) -> _Static:
        static = self._static.get(key)
        if static is None:
            try:
                memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
            except _DeviceFailed:
                memory = None  # still worth keeping the UUID of a GPU that fails (e.g. lost)
            static = _Static(
                uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                model=_text(pynvml.nvmlDeviceGetName(handle)),
                memory_total_bytes=int(memory.total) if memory is not None else None,
            )
            self._static[key] = static
        return static

    def _failed(self, key: str, index: int, exc: _DeviceFailed) -> DeviceSample:
        state, message = device_state_for(exc.code, exc.detail)
        static = self._static.get(key)
        return DeviceSample(
            uuid=static.uuid if static else f"gpu-index-{index}",
            index=index,
            model=static.model if static else None,
            memory_total_bytes=static.memory_total_bytes if static else None,
            state=state,
            message=message,
        )

    def _sample_gpu(self, index: int) -> list[DeviceSample]:
        key = str(index)
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            static = self._static_of(key, handle)
            mig = _optional(pynvml.nvmlDeviceGetMigMode, handle)
            mig_enabled = bool(mig and mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE)
            gpm = None
            if not mig_enabled and self._gpm.supported(key, handle):
                gpm = lambda: self._gpm.activity(  # noqa: E731
                    key, lambda s: pynvml.nvmlGpmSampleGet(handle, s)
                )
            gpu = self._read(handle, static, index=index, duty_cycle=not mig_enabled, gpm=gpm)
        except pynvml.NVMLError as exc:
            return [self._failed(key, index, _DeviceFailed(exc.value, str(exc)))]
        except _DeviceFailed as exc:
            return [self._failed(key, index, exc)]
        if not mig_enabled:
            return [gpu]
        return [gpu, *self._sample_migs(index, handle, static)]

    def _mig_gpm(self, parent_key: str, key: str, parent: Any, handle: Any) -> Any:
        """The instance's GPM reading, sampled through its parent by GPU instance id."""
        if not self._gpm.supported(parent_key, parent):
            return None
        instance = _optional(pynvml.nvmlDeviceGetGpuInstanceId, handle)
        if instance is None:
            return None
        return lambda: self._gpm.activity(
            key, lambda s: pynvml.nvmlGpmMigSampleGet(parent, instance, s)
        )

    def _sample_migs(self, index: int, parent: Any, parent_static: _Static) -> list[DeviceSample]:
        out: list[DeviceSample] = []
        slots = _optional(pynvml.nvmlDeviceGetMaxMigDeviceCount, parent) or 0
        for slot in range(slots):
            try:
                handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
            except pynvml.NVMLError:
                continue  # empty slot: NOT_FOUND (or INVALID_ARGUMENT on some drivers)
            key = f"{index}/{slot}"
            try:
                static = self._static_of(key, handle)
                gpm = self._mig_gpm(str(index), key, parent, handle)
                out.append(
                    self._read(handle, static, parent=parent_static, duty_cycle=False, gpm=gpm)
                )
            except (pynvml.NVMLError, _DeviceFailed) as exc:
                code = exc.code if isinstance(exc, _DeviceFailed) else exc.value
                failed = self._failed(key, index, _DeviceFailed(code, str(exc)))
                out.append(_with_parent(failed, parent_static))
        return out

    def _read(
        self,
        handle: Any,
        static: _Static,
        *,
        index: int | None = None,
        parent: _Static | None = None,
        duty_cycle: bool,
        gpm: Callable[[], float | None] | None = None,
    ) -> DeviceSample:
        memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
        used = int(memory.used) if memory is not None else None
        if memory is not None and static.memory_total_bytes is None:
            static.memory_total_bytes = int(memory.total)  # first read failed (GPU was lost)
        processes = _processes(handle)
        util: float | None = None
        signal: UtilizationSignal = "None"
        # GPM SM activity where the device has it (the whole interval since the last sample,
        # per MIG instance too); else the duty cycle; else, on MIG, process presence.
        if gpm is not None and (util := gpm()) is not None:
            signal = "SmActivity"
        if util is None and duty_cycle:
            rates = _optional(pynvml.nvmlDeviceGetUtilizationRates, handle)
            if rates is not None:
                util, signal = float(rates.gpu), "DutyCycle"
        if util is None and (parent is not None or duty_cycle):  # MIG parent: no signal
            util, signal = presence_utilization(processes, used)
        energy = power = None
        if parent is None:  # NVML has no per-instance energy or power on MIG
            energy = _optional(pynvml.nvmlDeviceGetTotalEnergyConsumption, handle)
            milliwatts = _optional(pynvml.nvmlDeviceGetPowerUsage, handle)
            power = milliwatts / 1000.0 if milliwatts is not None else None
        profile = None
        if parent is not None and static.model:
            match = _MIG_PROFILE.search(static.model)
            profile = match.group(1) if match else None
        return DeviceSample(
            uuid=static.uuid,
            index=index,
            model=parent.model if parent else static.model,
            parent_uuid=parent.uuid if parent else None,
            mig_profile=profile,
            memory_total_bytes=static.memory_total_bytes,
            memory_used_bytes=used,
            utilization_percent=util,
            utilization_signal=signal,
            energy_millijoules=int(energy) if energy is not None else None,
            power_watts=power,
            processes=processes or (),
        )


def _with_parent(sample: DeviceSample, parent: _Static) -> DeviceSample:
    return replace(sample, index=None, parent_uuid=parent.uuid, model=parent.model)


__all__ = ["NvmlProbe", "ProbeUnavailable"]
