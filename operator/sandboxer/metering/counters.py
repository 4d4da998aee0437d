"""Monotonic usage counters per (pod, GPU UUID): pure arithmetic over successive samples.

Each sample credits the time since the pair's previous sample with the state seen now:
allocated seconds, busy seconds (weighted by utilization), energy (the GPU's energy counter delta),
peak memory and the last time the pod was active on the GPU.

Rules that keep counters honest:
- **Capped intervals.** A credited interval is at most `max_credit_factor` (2) x the sample
  interval. A longer gap (agent paused, node suspended, NVML unavailable) means we did not see what
  happened in between: the pod may have appeared just before the sample, or the GPU may have been
  idle. Crediting at most two intervals absorbs normal scheduling jitter while under- rather than
  over-charging for time nobody observed. Energy deltas across such a gap are scaled down alike.
- **First sight credits nothing**; a pair starts counting from its first observation.
- **Energy going backwards** means the GPU was reset or the driver reloaded: the new reading
  becomes the baseline and nothing is subtracted.
- **A lost (or otherwise unhealthy) GPU credits nothing** while it is in that state, and its
  energy baseline is dropped, so a recovered GPU restarts cleanly.
- **Epoch**: a random id made when the book is created (agent start). Counters are monotonic
  within an epoch; a reader seeing a new epoch starts deltas from zero again.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sandboxer.metering.probe import DeviceSample

DEFAULT_ACTIVE_THRESHOLD = 5.0  # percent; below this a GPU is idle (processes or not)


@dataclass(frozen=True, slots=True)
class PodRef:
    namespace: str
    name: str
    uid: str = ""  # empty until resolved (the kubelet's PodResources API does not carry it)


@dataclass(slots=True)
class PairCounters:
    pod: PodRef
    gpu_uuid: str
    first_seen: datetime
    last_seen: datetime  # last sample credited
    last_held: datetime | None = None  # last time the kubelet said the pod holds the device
    allocated_seconds: float = 0.0
    busy_seconds: float = 0.0
    energy_joules: float = 0.0
    peak_memory_bytes: int = 0
    utilization_percent: float | None = None
    last_active_at: datetime | None = None


def new_epoch() -> str:
    return secrets.token_hex(8)


class CounterBook:
    """All pairs on one node, within one epoch."""

    def __init__(
        self,
        *,
        sample_interval: float = 10.0,
        max_credit_factor: float = 2.0,
        active_threshold: float = DEFAULT_ACTIVE_THRESHOLD,
        retain_seconds: float = 60.0,
        epoch: str | None = None,
    ) -> None:
        if sample_interval <= 0:
            raise ValueError(f"sample interval must be positive, got {sample_interval}")
        self.epoch = epoch or new_epoch()
        self.cap_seconds = sample_interval * max_credit_factor
        self.active_threshold = active_threshold
        self.retain_seconds = retain_seconds
        self._pairs: dict[tuple[str, str, str, str], PairCounters] = {}
        self._energy: dict[str, tuple[datetime, int]] = {}  # GPU UUID -> (when, mJ)

    def pairs(self) -> list[PairCounters]:
        return list(self._pairs.values())

    def observe(
        self,
        at: datetime,
        devices: Sequence[DeviceSample],
        holders: Mapping[str, PodRef],
        process_pods: Mapping[int, str] | None = None,
    ) -> None:
        """Credit one sample: `holders` maps device UUID -> pod, `process_pods` PID -> pod UID."""
        process_pods = process_pods or {}
        energy_mj = {d.uuid: self._energy_delta(at, d) for d in devices}
        for device in devices:
            pod = holders.get(device.uuid)
            if pod is not None:
                self._credit(at, device, pod, energy_mj[device.uuid], process_pods)
        # Still held, even if not sampled now (NVML unavailable): keep the pair, or its counters
        # would be pruned and restart from zero within the same epoch.
        for uuid, pod in holders.items():
            pair = self._pairs.get((pod.namespace, pod.name, pod.uid, uuid))
            if pair is not None:
                pair.last_held = at

    def _energy_delta(self, at: datetime, device: DeviceSample) -> float:
        """mJ used since the previous sample of this GPU, capped like the time interval."""
        if device.state != "Healthy" or device.energy_millijoules is None:
            self._energy.pop(device.uuid, None)
            return 0.0
        previous = self._energy.get(device.uuid)
        self._energy[device.uuid] = (at, device.energy_millijoules)
        if previous is None:
            return 0.0
        then, before = previous
        if device.energy_millijoules < before:  # reset: the new reading is the baseline
            return 0.0
        delta = float(device.energy_millijoules - before)
        seconds = (at - then).total_seconds()
        if seconds > self.cap_seconds:
            delta *= self.cap_seconds / seconds
        return delta

    def _pair(self, at: datetime, pod: PodRef, gpu: str) -> tuple[PairCounters, bool]:
        key = (pod.namespace, pod.name, pod.uid, gpu)
        pair = self._pairs.get(key)
        if pair is None and pod.uid:
            # The UID was resolved after the pair began: same pod incarnation, keep its counters.
            pair = self._pairs.pop((pod.namespace, pod.name, "", gpu), None)
            if pair is not None:
                pair.pod = replace(pair.pod, uid=pod.uid)
                self._pairs[key] = pair
        if pair is not None:
            return pair, False
        pair = PairCounters(pod=pod, gpu_uuid=gpu, first_seen=at, last_seen=at)
        self._pairs[key] = pair
        return pair, True

    def _credit(
        self,
        at: datetime,
        device: DeviceSample,
        pod: PodRef,
        energy_mj: float,
        process_pods: Mapping[int, str],
    ) -> None:
        pair, new = self._pair(at, pod, device.uuid)
        seconds = min(max((at - pair.last_seen).total_seconds(), 0.0), self.cap_seconds)
        pair.last_seen = max(pair.last_seen, at)
        if device.state != "Healthy":
            pair.utilization_percent = None
            return
        # Processes of this pod: those whose cgroup names it, or that no pod claims (the
        # device is the pod's by allocation); another pod's process on it is not this pod's use.
        own = [p for p in device.processes if process_pods.get(p.pid, pod.uid) == pod.uid]
        memory = sum(p.used_memory_bytes or 0 for p in own)
        pair.peak_memory_bytes = max(pair.peak_memory_bytes, memory)
        util = device.utilization_percent
        pair.utilization_percent = util
        # Activity, not presence: an idle kernel keeps its CUDA context (a listed process) at
        # 0 %. Presence stands in only where NVML gives no utilization (MIG instances).
        if (util is not None and util >= self.active_threshold) or (util is None and own):
            pair.last_active_at = at
        if new:
            return
        pair.allocated_seconds += seconds
        if util is not None:
            pair.busy_seconds += seconds * min(max(util, 0.0), 100.0) / 100.0
        pair.energy_joules += energy_mj / 1000.0

    def prune(self, now: datetime) -> list[PairCounters]:
        """Drop pairs not held for `retain_seconds` (the pod left); returns the dropped."""
        gone = [
            key
            for key, pair in self._pairs.items()
            if (now - (pair.last_held or pair.last_seen)).total_seconds() > self.retain_seconds
        ]
        return [self._pairs.pop(key) for key in gone]
