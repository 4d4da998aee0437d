"""Fold `GPUNodeReport` snapshots into usage deltas, each counted exactly once.

The agent keeps monotonic counters per (pod UID, GPU UUID) within an `epoch`; a restarted agent
starts a new epoch with counters from zero. The operator keeps one cursor per
(node, pod UID, GPU UUID) = (epoch, sequence, last counters, time) and counts only growth:

* same epoch, newer sequence, counters grew -> the growth is a delta; the cursor moves.
* duplicate or older sequence within the epoch -> ignored (its counters are already counted,
  because counters are monotonic and the cursor holds the largest seen).
* a new epoch for the node -> every cursor of that node's old epoch is dropped, the old epoch is
  remembered as retired, and the new epoch's counters count from zero.
* a report from a retired epoch (a replay after the agent restarted) -> ignored.

Exactly-once across an *operator* restart comes from persisting the cursors in the same state
blob as the open-hour accumulators they fed (see `ledger.checkpoint`): both move together, so a
restart resumes from a consistent pair and re-folding the same snapshots adds nothing.

Deltas are spread over the UTC hours of the report interval (from the cursor's time, or for a
fresh cursor from `reported_at - allocated delta`, to `reported_at`) in proportion to overlap.
Peak GPU memory is a high-water mark, not a counter: it is never split, only carried by the
delta of the hour the report was taken in (the last hour of the interval), where it is true.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandboxer.api.nodereport import GPUNodeReportStatus

STATE_VERSION = 1
# How many previous agent epochs per node are remembered to reject replays from them.
RETIRED_EPOCHS_KEPT = 8
# Reports this much older than a node's newest are ignored, and cursors of pods not seen for this
# long are pruned; together they keep the cursor table bounded without risking a double count.
DEFAULT_RETENTION = timedelta(hours=6)

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SandboxRef:
    """What the ledger needs to know about the sandbox that owns a pod."""

    uid: str
    name: str
    namespace: str
    owner: str
    team: str | None
    cost_center: str | None
    sandbox_class: str
    gpu_model: str
    mig_profile: str | None
    billing_weight: float
    budget: str | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    allocated_seconds: float = 0.0
    busy_seconds: float = 0.0
    energy_joules: float = 0.0

    def grew_from(self, old: Counters) -> bool:
        return (
            self.allocated_seconds > old.allocated_seconds
            or self.busy_seconds > old.busy_seconds
            or self.energy_joules > old.energy_joules
        )

    def minus(self, old: Counters) -> Counters:
        """Component-wise growth, never negative (a component that went down adds nothing)."""
        return Counters(
            max(0.0, self.allocated_seconds - old.allocated_seconds),
            max(0.0, self.busy_seconds - old.busy_seconds),
            max(0.0, self.energy_joules - old.energy_joules),
        )

    def high_water(self, old: Counters) -> Counters:
        return Counters(
            max(self.allocated_seconds, old.allocated_seconds),
            max(self.busy_seconds, old.busy_seconds),
            max(self.energy_joules, old.energy_joules),
        )

    def scaled(self, fraction: float) -> Counters:
        return Counters(
            self.allocated_seconds * fraction,
            self.busy_seconds * fraction,
            self.energy_joules * fraction,
        )


@dataclass(frozen=True, slots=True)
class Cursor:
    epoch: str
    sequence: int
    counters: Counters
    at: datetime


@dataclass(slots=True)
class NodeMark:
    epoch: str
    latest_at: datetime
    retired: tuple[str, ...] = ()
    gone: bool = False  # the node's report was deleted; it no longer holds hours open


PodGPU = tuple[str, str]  # (pod UID, GPU UUID); cursors are grouped per node


@dataclass(frozen=True, slots=True)
class UsageDelta:
    """Growth of one pod's counters on one GPU, within one UTC hour."""

    hour: datetime
    node: str
    pod_uid: str
    gpu_uuid: str
    sandbox: SandboxRef | None  # None: the pod is not (or no longer) a known sandbox
    usage: Counters
    # The agent's high-water mark of the pod's GPU memory on this GPU when reported; None on the
    # earlier hours of an interval that spans several (no report was taken in them).
    peak_memory_bytes: int | None = None


@dataclass(slots=True)
class Cursors:
    """The accounting state: node marks and per-(node, pod, GPU) cursors. Serializable."""

    nodes: dict[str, NodeMark] = field(default_factory=dict)
    keys: dict[str, dict[PodGPU, Cursor]] = field(default_factory=dict)

    def node_progress(self) -> dict[str, datetime]:
        """Newest report time per node: an hour closes once every node has passed it."""
        return {name: mark.latest_at for name, mark in self.nodes.items() if not mark.gone}

    def node_gone(self, node: str) -> None:
        """A node's GPUNodeReport was deleted: stop waiting for it before closing hours.

        Its cursors stay: an agent that is still running recreates the report with the same
        epoch and cumulative counters, which must not be counted again.
        """
        mark = self.nodes.get(node)
        if mark is not None:
            mark.gone = True

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "nodes": {
                name: {"epoch": m.epoch, "latestAt": iso_utc(m.latest_at),
                       "retired": list(m.retired), "gone": m.gone}
                for name, m in sorted(self.nodes.items())
            },
            # A node's cursors all share its current epoch (older ones are dropped on change).
            # Times as integer microseconds since the POSIX epoch: exact and cheap.
            "keys": {
                node: [
                    [pod, gpu, c.sequence, _micros(c.at), c.counters.allocated_seconds,
                     c.counters.busy_seconds, c.counters.energy_joules]
                    for (pod, gpu), c in sorted(per_node.items())
                ]
                for node, per_node in sorted(self.keys.items())
            },
        }  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes) -> Cursors:
        if not data:
            return cls()
        return cls.from_json(json.loads(data))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Cursors:
        if doc.get("version") != STATE_VERSION:
            raise ValueError(
                f"accounting cursors have version {doc.get('version')!r}, this operator reads "
                f"version {STATE_VERSION}; restore a matching operator version or reset the state"
            )
        nodes = {
            name: NodeMark(m["epoch"], parse_utc(m["latestAt"]), tuple(m["retired"]), m["gone"])
            for name, m in doc["nodes"].items()
        }
        keys: dict[str, dict[PodGPU, Cursor]] = {}
        for node, rows in doc["keys"].items():
            epoch = nodes[node].epoch
            keys[node] = {
                (pod, gpu): Cursor(
                    epoch, seq, Counters(alloc, busy, energy), _EPOCH + timedelta(microseconds=at)
                )
                for pod, gpu, seq, at, alloc, busy, energy in rows
            }
        return cls(nodes, keys)


@dataclass(frozen=True, slots=True)
class FoldResult:
    deltas: list[UsageDelta]
    accepted: bool  # False: the whole report was a replay/stale and was ignored
    reason: str = ""
    epoch_changed: bool = False  # the node's agent restarted: commit the checkpoint now

    @property
    def unattributed(self) -> list[UsageDelta]:
        return [d for d in self.deltas if d.sandbox is None]


def fold_report(
    cursors: Cursors,
    node: str,
    report: GPUNodeReportStatus,
    sandboxes: Mapping[str, SandboxRef],
    *,
    retention: timedelta = DEFAULT_RETENTION,
) -> FoldResult:
    """Advance `cursors` by one node report and return the new usage, split by UTC hour.

    `sandboxes` maps pod UID -> SandboxRef. Usage of an unknown pod still moves its cursor (so it
    is never counted later twice) and comes back with `sandbox=None` for the caller to log.
    """
    if not report.epoch or report.reported_at is None:
        return FoldResult([], False, "report has no epoch or reportedAt yet")
    at = _utc(report.reported_at)
    mark = cursors.nodes.get(node)
    if mark is not None:
        if report.epoch in mark.retired:
            return FoldResult([], False, f"report from retired agent epoch {report.epoch}")
        if at < mark.latest_at - retention:
            return FoldResult([], False, "report older than the retention window")
    epoch_changed = mark is not None and mark.epoch != report.epoch
    if mark is None:
        mark = cursors.nodes[node] = NodeMark(report.epoch, at)
    elif epoch_changed:
        _retire_epoch(cursors, node, mark, report.epoch)
    mark.latest_at = max(mark.latest_at, at)
    mark.gone = False

    keys = cursors.keys.setdefault(node, {})
    deltas: list[UsageDelta] = []
    for pod in report.pods:
        ref = sandboxes.get(pod.uid)
        for gpu in pod.gpus:
            key = (pod.uid, gpu.uuid)
            now_counters = Counters(gpu.allocated_seconds, gpu.busy_seconds, gpu.energy_joules)
            old = keys.get(key)
            if old is not None and old.epoch == report.epoch:
                if report.sequence <= old.sequence:
                    continue
                if not now_counters.grew_from(old.counters):
                    # Still listed, nothing new: refresh so retention never prunes a live key
                    # (a pruned key would be counted again from zero).
                    keys[key] = Cursor(old.epoch, report.sequence, old.counters, max(at, old.at))
                    continue
                growth = now_counters.minus(old.counters)
                start = old.at
                counters = now_counters.high_water(old.counters)
            else:
                growth = now_counters
                start = at - timedelta(seconds=growth.allocated_seconds)
                counters = now_counters
            # max(): a skewed clock must not move a cursor's time backwards.
            keys[key] = Cursor(report.epoch, report.sequence, counters, max(at, start))
            parts = list(split_by_hour(start, at, growth))
            for index, (hour, part) in enumerate(parts, start=1):
                peak = gpu.peak_memory_bytes if index == len(parts) else None
                deltas.append(UsageDelta(hour, node, pod.uid, gpu.uuid, ref, part, peak))
    _prune(keys, mark.latest_at - retention)
    return FoldResult(deltas, True, epoch_changed=epoch_changed)


def _retire_epoch(cursors: Cursors, node: str, mark: NodeMark, new_epoch: str) -> None:
    # Cursors of the old epoch can never match again: its reports are now rejected as retired.
    mark.retired = (*mark.retired, mark.epoch)[-RETIRED_EPOCHS_KEPT:]
    mark.epoch = new_epoch
    cursors.keys[node] = {}


def _prune(keys: dict[PodGPU, Cursor], before: datetime) -> None:
    stale = [k for k, c in keys.items() if c.at < before]
    for key in stale:
        del keys[key]


def split_by_hour(
    start: datetime, end: datetime, usage: Counters
) -> Iterator[tuple[datetime, Counters]]:
    """Spread `usage` over the UTC hours of [start, end) in proportion to the overlap."""
    if end <= start:
        yield hour_of(end), usage
        return
    total = (end - start).total_seconds()
    hour = hour_of(start)
    while hour < end:
        overlap = (min(end, hour + HOUR) - max(start, hour)).total_seconds()
        if overlap > 0:
            yield hour, usage.scaled(overlap / total)
        hour += HOUR


def hour_of(at: datetime) -> datetime:
    return _utc(at).replace(minute=0, second=0, microsecond=0)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"timestamp {at.isoformat()} has no time zone; reports must be in UTC")
    return at.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def iso_utc(at: datetime) -> str:
    """Checkpoint timestamps: full precision, UTC (hourly.py encodes its hours the same way)."""
    return at.astimezone(UTC).isoformat()


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


__all__ = [
    "Counters",
    "Cursor",
    "Cursors",
    "FoldResult",
    "SandboxRef",
    "UsageDelta",
    "fold_report",
    "hour_of",
    "split_by_hour",
]
