"""Telemetry in the loop: keep what each pass saw of every sandbox, for `sandboxer replay`.

A row is added for each node report a sandbox's pod appears in (once per report), and for each
change of a sandbox's state (running, pending, suspended with its reason, deleted). The rows of
the passes since the last write go to the ledger store as one part of the open hour, at most
every `checkpoint_interval` (the ledger's cadence) and at every hour change; once the hour is
over its parts are merged into the hour's one file, and files older than
`telemetry_retention` are deleted.

Exactly once, the way the ledger does it: every write has a deterministic key (a rewrite
replaces, never adds) and every row an idempotent key (`TelemetryRow.key`). A restarted loop
reads the newest file back and continues from each sandbox's last row, so the same report or
state is not recorded twice; rows of passes after the last write are lost by a crash, never
doubled, and the replay reports the hours it lacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sandboxer.ledger import telemetry
from sandboxer.ledger.accounting import SandboxRef, hour_of
from sandboxer.ledger.store import LedgerStore, TelemetryFile
from sandboxer.ledger.telemetry import GPUSample, State, TelemetryRow
from sandboxer.loop.results import Suspends
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import JupyterReading, SandboxView, Snapshot
from sandboxer.reclaim.idle import activity_from_report

Mark = tuple[State, str | None, datetime | None]  # state, suspension reason, run start


def _mark(row: TelemetryRow) -> Mark:
    return (row.state, row.suspended_reason, row.started_at)


class TelemetryRecorder:
    def __init__(self, store: LedgerStore, settings: LoopSettings) -> None:
        self.store = store
        self.settings = settings
        self._hour: datetime | None = None  # the hour the pending rows belong to
        self._pending: list[TelemetryRow] = []
        self._latest: dict[str, TelemetryRow] = {}  # sandbox uid -> its last row
        self._marks: dict[str, Mark] = {}  # sandbox uid -> the state its last row recorded
        # sandbox uid -> (the view, billing weight) and its row without time: parsed once per
        # change of the view (the snapshot builder keeps an unchanged view the same object)
        self._bases: dict[str, tuple[SandboxView, float | None, TelemetryRow]] = {}
        self._reports: dict[str, str] = {}  # sandbox uid -> the last report recorded
        self._jupyter: dict[str, datetime] = {}  # sandbox uid -> the last Jupyter reading's time
        self._written_at: datetime | None = None
        self._loaded = False

    def _load(self) -> None:
        """Continue from the newest stored hour: each sandbox's last row and last report."""
        self._loaded = True
        files = self.store.list_telemetry()
        if not files:
            return
        newest = files[-1].hour
        for entry in (f for f in files if f.hour == newest):
            rows = telemetry.decode(self.store.read_telemetry_bytes(entry), entry.key)
            for row in sorted(rows, key=telemetry.order):
                self._latest[row.sandbox_uid] = row
                self._marks[row.sandbox_uid] = _mark(row)
                if row.report is not None:
                    self._reports[row.sandbox_uid] = row.report

    def run(self, snap: Snapshot, refs: Mapping[str, SandboxRef], suspends: Suspends) -> None:
        if not self._loaded:
            self._load()
        now = snap.now
        hour = hour_of(now)
        if self._hour != hour:
            if self._hour is not None:
                self._write(now)  # the last part of the hour that ended
            self._merge_before(hour)  # also what a loop stopped before an hour's end left
            self._hour = hour
            self._write(now)  # an hour the loop ran in has a file, even without sandboxes
        pod_of = {ref.uid: pod_uid for pod_uid, ref in refs.items()}
        live: set[str] = set()
        bases, self._bases = self._bases, {}
        for sb in snap.sandboxes.values():
            uid = sb.uid
            live.add(uid)
            cls = snap.classes.get(sb.spec.class_)
            weight = cls.gpu.billing_weight if cls else None
            cached = bases.get(uid)
            if cached is None or cached[0] is not sb or cached[1] != weight:
                cached = (sb, weight, _base_row(sb, weight))  # the view changed: parse it again
            self._bases[uid] = cached
            base = cached[2]
            node = sb.status.node or ""
            report = snap.reports.get(node)
            pod_uid = pod_of.get(uid)
            if (
                base.state != "suspended"
                and report is not None
                and report.reported_at is not None
                and pod_uid is not None
            ):
                mark = f"{report.epoch or ''}/{report.sequence}"
                if self._reports.get(uid) != mark:
                    gpus = tuple(
                        GPUSample(a.uuid, a.utilization_percent, a.processes, a.last_active_at)
                        for a in activity_from_report(report, pod_uid)
                    )
                    self._add(dataclasses.replace(
                        base, at=report.reported_at, node=node, report=mark, gpu=gpus
                    ))  # fmt: skip
                    self._reports[uid] = mark
            reading = snap.jupyter.get((sb.namespace, sb.name))
            if isinstance(reading, JupyterReading) and self._jupyter.get(uid) != reading.read_at:
                # What Jupyter said, at the time it was asked (controller/jupyter_activity.py).
                self._add(dataclasses.replace(
                    base, at=reading.read_at, jupyter_last_activity=reading.last_activity
                ))  # fmt: skip
                self._jupyter[uid] = reading.read_at
            decided = suspends.get(uid)
            if decided is not None:  # suspended by this pass: the reason and time are exact
                base = dataclasses.replace(
                    base, state="suspended", suspended_reason=decided[0], started_at=None
                )
            if self._marks.get(uid) != _mark(base):
                self._add(dataclasses.replace(base, at=now))
        for uid in sorted(set(self._latest) - live):
            gone = self._latest.pop(uid)
            self._reports.pop(uid, None)
            self._marks.pop(uid, None)
            self._jupyter.pop(uid, None)
            if gone.state != "deleted":
                self._pending.append(
                    dataclasses.replace(gone, at=now, state="deleted", report=None, gpu=())
                )
        # Written at the ledger's cadence even when nothing changed: the parts' times are how
        # a replay knows up to when the loop was watching.
        interval = self.settings.checkpoint_interval
        if self._written_at is None or now - self._written_at >= interval:
            self._write(now)

    def _add(self, row: TelemetryRow) -> None:
        self._pending.append(row)
        self._latest[row.sandbox_uid] = row
        self._marks[row.sandbox_uid] = _mark(row)

    def _write(self, now: datetime) -> None:
        assert self._hour is not None
        self.store.write_telemetry(self._hour, telemetry.encode(self._pending), part=now)
        self._pending = []
        self._written_at = now

    def _merge_before(self, hour: datetime) -> None:
        """Merge the parts of every hour before `hour` into its file; apply the retention."""
        by_hour: dict[datetime, list[TelemetryFile]] = {}
        for entry in self.store.list_telemetry(end=hour):
            by_hour.setdefault(entry.hour, []).append(entry)
        oldest = hour - self.settings.telemetry_retention
        for at, entries in sorted(by_hour.items()):
            if at + timedelta(hours=1) <= oldest:
                for entry in entries:
                    self.store.delete_telemetry(entry)
                continue
            parts = [e for e in entries if e.part]
            if not parts:
                continue
            if not any(not e.part for e in entries):  # merged already when a crash left parts
                data = ((e.key, self.store.read_telemetry_bytes(e)) for e in parts)
                times = [telemetry.part_time(e.part) for e in parts]
                until = min(max(times), at + timedelta(hours=1))
                merged = telemetry.merge_parts(data, min(times), until)
                self.store.write_telemetry(at, merged)
            for entry in parts:
                self.store.delete_telemetry(entry)


_NO_TIME = datetime.min.replace(tzinfo=UTC)


def _base_row(sb: SandboxView, weight: float | None) -> TelemetryRow:
    """The sandbox's row without a time (`at` is set when the row is recorded)."""
    state: State
    if sb.spec.suspend:
        state = "suspended"
    elif sb.status.started_at is not None:
        state = "running"
    else:
        state = "pending"
    idle = sb.spec.idle
    return TelemetryRow(
        at=_NO_TIME,
        sandbox_uid=sb.uid,
        namespace=sb.namespace,
        name=sb.name,
        owner=sb.owner,
        sandbox_class=sb.spec.class_,
        state=state,
        gpus=sb.spec.gpus,
        billing_weight=weight,
        suspended_reason=sb.status.suspended_reason if state == "suspended" else None,
        started_at=sb.status.started_at if state == "running" else None,
        idle_after=idle.after if idle else None,
        idle_disabled=idle.disabled if idle else False,
        lifetime=sb.spec.lifetime,
        node=sb.status.node,
    )
