"""What a GPU backend reports, in our own types: the real NVML probe and the simulation share it.

Nothing outside `nvml.py` sees pynvml; everything downstream (counters, reports, metrics) speaks
`DeviceSample` and `ProcessSample`. NVML error codes are mapped here, as plain integers, so the
simulated backend injects exactly the failures the real one can meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sandboxer.api.nodereport import GPUState, UtilizationSignal

# NVML return codes (nvml.h `nvmlReturn_t`); pynvml raises NVMLError_<Name> with `.value` = code.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

# Errors that make the whole library unusable (no device can be read until it is fixed).
_LIBRARY_ERRORS: dict[int, tuple[str, str]] = {
    NVML_ERROR_LIBRARY_NOT_FOUND: (
        "LibraryNotFound",
        "libnvidia-ml.so.1 was not found: run the agent with the NVIDIA container runtime "
        "(or mount the driver libraries) on a GPU node",
    ),
    NVML_ERROR_DRIVER_NOT_LOADED: (
        "DriverNotLoaded",
        "the NVIDIA kernel driver is not loaded on this node: check the driver installation",
    ),
    NVML_ERROR_NO_PERMISSION: (
        "NoPermission",
        "NVML refused access: the agent needs access to /dev/nvidia* (run it privileged or "
        "with the NVIDIA runtime)",
    ),
}

# Errors for one device: the state it is reported in.
_DEVICE_ERRORS: dict[int, tuple[GPUState, str]] = {
    NVML_ERROR_GPU_IS_LOST: ("Lost", "GPU is lost (fell off the bus or needs a reset)"),
    NVML_ERROR_NOT_SUPPORTED: ("Unsupported", "NVML does not support this query on the device"),
    NVML_ERROR_NO_PERMISSION: ("Unknown", "NVML refused access to the device"),
}


class ProbeUnavailable(Exception):
    """NVML as a whole cannot be used now (library missing, driver not loaded, no permission)."""

    def __init__(self, reason: str, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code


def unavailable_from_code(code: int, detail: str = "") -> ProbeUnavailable:
    reason, message = _LIBRARY_ERRORS.get(code, ("NVMLError", f"NVML failed with code {code}"))
    return ProbeUnavailable(reason, f"{message}{': ' + detail if detail else ''}", code)


def device_state_for(code: int, detail: str = "") -> tuple[GPUState, str]:
    """The reported state of a device whose query failed with NVML `code`."""
    state, message = _DEVICE_ERRORS.get(code, ("Unknown", f"NVML failed with code {code}"))
    return state, f"{message}{' (' + detail + ')' if detail else ''}"


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """A compute process on a device; `pid` is a host PID (NVML is not PID-namespace aware)."""

    pid: int
    used_memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceSample:
    """One read of one GPU or MIG device. `None` means "not available", never zero."""

    uuid: str
    index: int | None = None
    model: str | None = None
    parent_uuid: str | None = None  # set for MIG devices
    mig_profile: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_percent: float | None = None
    utilization_signal: UtilizationSignal = "None"
    energy_millijoules: int | None = None  # since driver load; resets with the driver
    power_watts: float | None = None
    processes: tuple[ProcessSample, ...] = ()
    state: GPUState = "Healthy"
    message: str | None = None

    @property
    def is_mig(self) -> bool:
        return self.parent_uuid is not None


class GPUBackend(Protocol):
    """A source of device samples: `NvmlProbe` on real nodes, `SimulatedNVML` elsewhere.

    `sample()` raises `ProbeUnavailable` when no device can be read at all; per-device problems
    come back as samples with a non-Healthy `state` instead, so one lost GPU never hides the rest.
    """

    def sample(self) -> list[DeviceSample]: ...

    def close(self) -> None: ...


def presence_utilization(
    processes: tuple[ProcessSample, ...] | None, memory_used_bytes: int | None
) -> tuple[float | None, UtilizationSignal]:
    """Utilization where the duty cycle is unavailable (MIG): process presence, else memory.

    NVML has no per-instance duty cycle on MIG, so a MIG device counts as 100 % busy while a
    compute process runs on it. Without a process list, memory in use (above the ~few MiB the
    driver keeps) is the weaker signal of last resort.
    """
    if processes is not None:
        return (100.0 if processes else 0.0), "ProcessPresence"
    if memory_used_bytes is not None:
        return (100.0 if memory_used_bytes > MEMORY_ACTIVITY_BYTES else 0.0), "MemoryActivity"
    return None, "None"


# Memory a MIG instance shows with no context on it is a few MiB; a CUDA context needs far more.
MEMORY_ACTIVITY_BYTES = 64 * 2**20
