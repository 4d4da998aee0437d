"""GPM SM activity: the share of a GPU's (or MIG instance's) SMs that were busy between samples.

NVML's GPU Performance Monitoring (Hopper and newer, driver 525+) reads counters into opaque
samples; a metric is computed from two of them, so a device's first sample gives no value and
each later one gives the activity since the one before — the whole interval between the
agent's samples, not the last second the duty cycle covers. It works per MIG instance too
(`nvmlGpmMigSampleGet` with the instance's GPU instance id), which is the only real activity
signal MIG has. Devices without GPM (older GPUs, old drivers: NOT_SUPPORTED or
FUNCTION_NOT_FOUND) are remembered as such and asked no more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pynvml

SM_UTIL = pynvml.NVML_GPM_METRIC_SM_UTIL


class GpmReader:
    """One previous sample per device key ("0", "1/3"), freed when replaced or on close."""

    def __init__(self) -> None:
        self._previous: dict[str, Any] = {}
        self._supported: dict[str, bool] = {}

    def supported(self, key: str, handle: Any) -> bool:
        """Whether the (full or parent) GPU behind `key` offers GPM; asked once per device."""
        known = self._supported.get(key)
        if known is None:
            try:
                known = bool(pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)
            except pynvml.NVMLError:  # no GPM in this driver, or not on this device
                known = False
            self._supported[key] = known
        return known

    def activity(self, key: str, take: Callable[[Any], Any]) -> float | None:
        """SM activity in % since this key's previous sample; None on its first, or on errors
        (after which GPM is not asked for this key again)."""
        try:
            sample = pynvml.nvmlGpmSampleAlloc()
        except pynvml.NVMLError:
            self._supported[key] = False
            return None
        try:
            take(sample)
        except pynvml.NVMLError:
            self._free(sample)
            self._drop(key)
            self._supported[key] = False
            return None
        previous = self._previous.pop(key, None)
        self._previous[key] = sample
        if previous is None:
            return None
        try:
            return self._sm_util(previous, sample)
        except pynvml.NVMLError:
            return None
        finally:
            self._free(previous)

    @staticmethod
    def _sm_util(older: Any, newer: Any) -> float | None:
        query = pynvml.c_nvmlGpmMetricsGet_t()
        query.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        query.numMetrics = 1
        query.sample1, query.sample2 = older, newer
        query.metrics[0].metricId = SM_UTIL
        pynvml.nvmlGpmMetricsGet(query)
        metric = query.metrics[0]
        if metric.nvmlReturn != pynvml.NVML_SUCCESS:
            return None
        return min(max(float(metric.value), 0.0), 100.0)

    def _drop(self, key: str) -> None:
        previous = self._previous.pop(key, None)
        if previous is not None:
            self._free(previous)

    @staticmethod
    def _free(sample: Any) -> None:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlGpmSampleFree(sample)

    def close(self) -> None:
        """Free every sample (before nvmlShutdown); support is asked again after a re-init."""
        for key in list(self._previous):
            self._drop(key)
        self._supported.clear()
