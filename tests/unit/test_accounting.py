"""Accounting: report snapshots -> usage, exactly once, whatever the delivery order."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxer.api.nodereport import GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.api.ratecard import RateCardSpec
from sandboxer.ledger import checkpoint
from sandboxer.ledger.accounting import Counters, Cursors, FoldResult, fold_report, split_by_hour
from sandboxer.ledger.hourly import HourBook
from sandboxer.ledger.rows import UsageRow
from tests.unit.ledger_sim import SimAgent, ref

T0 = datetime(2026, 11, 30, 22, 50, tzinfo=UTC)
REPORT = timedelta(seconds=30)  # crosses an hour, a day and a month boundary
CARD = RateCardSpec(prices=[])
PODS = {  # pod uid -> (node, GPUs)
    "p0": ("n0", ["g0"]),
    "p1": ("n0", ["g1", "g2"]),
    "p2": ("n1", ["g3"]),
}
SANDBOXES = {"p0": ref("s0"), "p1": ref("s1", weight=0.5), "p2": ref("s2")}


def _total_weighted_hours(rows: list[UsageRow]) -> float:
    return sum(r.allocated_gpu_hours for r in rows)


@st.composite
def agent_histories(draw: st.DrawFn) -> tuple[list[tuple[str, GPUNodeReportStatus]], float]:
    """Published reports per node, in publication order, and the ground truth they carry.

    Ground truth = for every epoch, the counters of its last report (weighted GPU-hours).
    """
    agents = {n: SimAgent(n) for n in ("n0", "n1")}
    published: list[tuple[str, GPUNodeReportStatus]] = []
    now = T0
    for _ in range(draw(st.integers(1, 30))):
        op = draw(st.sampled_from(["use", "use", "report", "report", "restart"]))
        node = draw(st.sampled_from(["n0", "n1"]))
        agent = agents[node]
        if op == "use":
            seconds = draw(st.floats(1, 1800))
            for pod, (pod_node, gpus) in PODS.items():
                if pod_node == node and draw(st.booleans()):
                    agent.use(pod, gpus, seconds, draw(st.floats(0, 1)))
            now += timedelta(seconds=seconds)
        elif op == "report":
            now += timedelta(seconds=draw(st.integers(0, 30)))
            published.append((node, agent.report(now)))
        else:
            agent.restart()
    truth = 0.0
    last: dict[tuple[str, str], GPUNodeReportStatus] = {}
    for node, report in published:
        last[(node, report.epoch or "")] = report
    for final in last.values():
        for pod_report in final.pods:
            weight = SANDBOXES[pod_report.uid].billing_weight
            truth += sum(g.allocated_seconds for g in pod_report.gpus) / 3600 * weight
    return published, truth


def deliveries(
    published: list[tuple[str, GPUNodeReportStatus]], rng: random.Random
) -> list[tuple[str, GPUNodeReportStatus]]:
    """What a watch may hand the operator: every report at least once, duplicates, reordering
    inside an epoch, and stale replays of older epochs; an epoch's reports all come before the
    next epoch's (a watch delivers an object's versions in order)."""
    per_node: dict[str, list[list[tuple[str, GPUNodeReportStatus]]]] = {}
    for node, report in published:
        epochs = per_node.setdefault(node, [])
        if not epochs or epochs[-1][0][1].epoch != report.epoch:
            epochs.append([])
        epochs[-1].append((node, report))
    streams: list[list[tuple[str, GPUNodeReportStatus]]] = []
    for epochs in per_node.values():
        stream: list[tuple[str, GPUNodeReportStatus]] = []
        for i, epoch in enumerate(epochs):
            batch = epoch + [rng.choice(epoch) for _ in range(rng.randint(0, 3))]
            rng.shuffle(batch)
            stream += batch
            if i and rng.random() < 0.5:  # a replay from a retired epoch
                stream.append(rng.choice(epochs[rng.randrange(i)]))
        streams.append(stream)
    merged: list[tuple[str, GPUNodeReportStatus]] = []
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        merged.append(stream.pop(0))
    return merged


def _run(
    delivered: list[tuple[str, GPUNodeReportStatus]],
    rng: random.Random,
    *,
    operator_restarts: bool,
) -> tuple[list[UsageRow], Cursors, HourBook]:
    cursors, book = Cursors(), HourBook()
    written: dict[tuple[datetime, int], list[UsageRow]] = {}
    for node, report in delivered:
        result = fold_report(cursors, node, report, SANDBOXES)
        assert all(d.usage.allocated_seconds >= 0 for d in result.deltas)
        book.add(result.deltas)
        assert report.reported_at is not None
        for closed in book.close(report.reported_at, cursors.node_progress(), CARD):
            written[(closed.hour, closed.revision)] = closed.rows
        if operator_restarts and rng.random() < 0.3:
            cursors, book = checkpoint.decode(checkpoint.encode(cursors, book))
    rows = [r for rs in written.values() for r in rs] + book.open_rows(CARD)
    return rows, cursors, book


@settings(max_examples=150, deadline=None)
@given(agent_histories(), st.randoms(use_true_random=False), st.booleans())
def test_ledger_total_equals_ground_truth(
    history: tuple[list[tuple[str, GPUNodeReportStatus]], float],
    rng: random.Random,
    operator_restarts: bool,
) -> None:
    published, truth = history
    rows, _, _ = _run(deliveries(published, rng), rng, operator_restarts=operator_restarts)
    assert all(r.allocated_gpu_hours >= 0 and r.busy_gpu_hours >= 0 for r in rows)
    assert all(r.busy_gpu_hours <= r.allocated_gpu_hours + 1e-9 for r in rows)
    assert math.isclose(_total_weighted_hours(rows), truth, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(agent_histories(), st.randoms(use_true_random=False))
def test_replaying_every_report_again_adds_nothing(
    history: tuple[list[tuple[str, GPUNodeReportStatus]], float], rng: random.Random
) -> None:
    published, _ = history
    delivered = deliveries(published, rng)
    _, cursors, _ = _run(delivered, rng, operator_restarts=False)
    for node, report in delivered:
        assert fold_report(cursors, node, report, SANDBOXES).deltas == []


def test_crash_before_commit_rewrites_the_same_hour_instead_of_adding() -> None:
    agent = SimAgent("n0")
    store = _MemoryStore()
    cursors, book = checkpoint.load(store)
    agent.use("p0", ["g0"], 1800, 1.0)
    first = agent.report(T0)
    book.add(fold_report(cursors, "n0", first, SANDBOXES).deltas)
    checkpoint.commit(store, [], cursors, book)
    agent.use("p0", ["g0"], 3600, 1.0)
    second = agent.report(T0 + timedelta(hours=1))
    late = T0 + timedelta(hours=2)
    # Pass 1 writes the closed hours, then "crashes" before saving its state.
    book.add(fold_report(cursors, "n0", second, SANDBOXES).deltas)
    for closed in book.close(late, cursors.node_progress(), CARD):
        store.write_hour(closed.hour, closed.rows, closed.revision)
    files_after_crash = dict(store.hours)
    # Restart: same snapshot folded again from the saved cursors.
    cursors, book = checkpoint.load(store)
    book.add(fold_report(cursors, "n0", second, SANDBOXES).deltas)
    checkpoint.commit(store, book.close(late, cursors.node_progress(), CARD), cursors, book)
    assert store.hours == files_after_crash
    total = sum(r.allocated_gpu_hours for rows in store.hours.values() for r in rows)
    assert total == pytest.approx(1.5)


class _MemoryStore:
    def __init__(self) -> None:
        self.hours: dict[tuple[datetime, int], list[UsageRow]] = {}
        self.state: dict[str, bytes] = {}

    def write_hour(self, hour: datetime, rows: list[UsageRow], revision: int) -> None:
        self.hours[(hour, revision)] = list(rows)

    def get_state(self, name: str) -> bytes | None:
        return self.state.get(name)

    def put_state(self, name: str, data: bytes) -> None:
        self.state[name] = data


def test_new_epoch_counts_from_zero_and_old_epoch_replay_is_ignored() -> None:
    agent = SimAgent("n0")
    cursors = Cursors()
    agent.use("p0", ["g0"], 100, 0.5)
    old = agent.report(T0)
    assert _seconds(fold_report(cursors, "n0", old, SANDBOXES)) == 100
    agent.restart()
    agent.use("p0", ["g0"], 40, 0.5)
    new = agent.report(T0 + timedelta(seconds=60))
    result = fold_report(cursors, "n0", new, SANDBOXES)
    assert result.epoch_changed
    assert _seconds(result) == 40
    replay = fold_report(cursors, "n0", old, SANDBOXES)
    assert not replay.accepted
    assert "retired" in replay.reason


def test_older_sequence_and_duplicate_are_ignored() -> None:
    agent = SimAgent("n0")
    cursors = Cursors()
    agent.use("p0", ["g0"], 10, 1)
    first = agent.report(T0)
    agent.use("p0", ["g0"], 10, 1)
    second = agent.report(T0 + timedelta(seconds=30))
    assert _seconds(fold_report(cursors, "n0", second, SANDBOXES)) == 20
    assert _seconds(fold_report(cursors, "n0", first, SANDBOXES)) == 0
    assert _seconds(fold_report(cursors, "n0", second, SANDBOXES)) == 0


def test_a_key_listed_with_frozen_counters_is_not_recounted_after_retention() -> None:
    agent = SimAgent("n0")
    cursors = Cursors()
    agent.use("p0", ["g0"], 600, 1)
    assert _seconds(fold_report(cursors, "n0", agent.report(T0), SANDBOXES)) == 600
    for hour in range(1, 10):  # the pod stays listed, its counters no longer grow
        report = agent.report(T0 + timedelta(hours=hour))
        assert _seconds(fold_report(cursors, "n0", report, SANDBOXES)) == 0


def test_reports_older_than_retention_are_ignored() -> None:
    agent = SimAgent("n0")
    cursors = Cursors()
    agent.use("p0", ["g0"], 60, 1)
    old = agent.report(T0)
    agent.use("p1", ["g1"], 60, 1)
    fold_report(cursors, "n0", agent.report(T0 + timedelta(hours=7)), SANDBOXES)
    result = fold_report(cursors, "n0", old, SANDBOXES)
    assert (result.accepted, result.reason) == (False, "report older than the retention window")


def test_unknown_pod_moves_its_cursor_and_is_reported_unattributed() -> None:
    report = GPUNodeReportStatus(
        epoch="e1",
        sequence=1,
        reported_at=T0,
        pods=[PodReport(uid="stranger", namespace="x", name="y",
                        gpus=[PodGPUCounters(uuid="g9", allocated_seconds=30)])],
    )  # fmt: skip
    cursors = Cursors()
    result = fold_report(cursors, "n0", report, SANDBOXES)
    assert [d.usage.allocated_seconds for d in result.unattributed] == [30]
    book = HourBook()
    book.add(result.deltas)
    assert book.unattributed_seconds == 30
    assert fold_report(cursors, "n0", report, SANDBOXES).deltas == []


def test_report_without_epoch_is_not_counted() -> None:
    result = fold_report(Cursors(), "n0", GPUNodeReportStatus(), SANDBOXES)
    assert not result.accepted
    assert "epoch" in result.reason


def test_naive_timestamp_is_refused_with_a_clear_error() -> None:
    report = GPUNodeReportStatus(epoch="e", sequence=1, reported_at=datetime(2026, 11, 1))
    with pytest.raises(ValueError, match="no time zone"):
        fold_report(Cursors(), "n0", report, SANDBOXES)


def test_interval_is_split_across_the_hour_in_proportion() -> None:
    start = datetime(2026, 11, 3, 10, 45, tzinfo=UTC)
    parts = list(split_by_hour(start, start + timedelta(minutes=30), Counters(1800, 900, 90)))
    assert [h.hour for h, _ in parts] == [10, 11]
    assert [c.allocated_seconds for _, c in parts] == [900, 900]
    assert [c.energy_joules for _, c in parts] == [45, 45]


def test_cursor_bytes_are_deterministic_and_round_trip() -> None:
    agent = SimAgent("n0")
    cursors = Cursors()
    agent.use("p1", ["g2", "g1"], 10, 1)
    agent.use("p0", ["g0"], 10, 1)
    fold_report(cursors, "n0", agent.report(T0 + timedelta(microseconds=123457)), SANDBOXES)
    data = cursors.to_bytes()
    assert Cursors.from_bytes(data).to_bytes() == data
    assert Cursors.from_bytes(data) == cursors


def test_deleted_report_stops_holding_hours_open_without_recounting() -> None:
    agent = SimAgent("n0")
    cursors = Cursors()
    agent.use("p0", ["g0"], 60, 1)
    report = agent.report(T0)
    fold_report(cursors, "n0", report, SANDBOXES)
    cursors.node_gone("n0")
    assert cursors.node_progress() == {}
    restored = Cursors.from_bytes(cursors.to_bytes())
    assert restored.node_progress() == {}
    # The agent recreates its report with the same epoch and cumulative counters.
    agent.use("p0", ["g0"], 30, 1)
    assert _seconds(fold_report(restored, "n0", agent.report(T0 + REPORT), SANDBOXES)) == 30
    assert restored.node_progress() == {"n0": T0 + REPORT}


def test_checkpoint_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        checkpoint.decode(b'{"version": 99}')


def _seconds(result: FoldResult) -> float:
    return sum(d.usage.allocated_seconds for d in result.deltas)


def _peak_report(
    sequence: int, at: datetime, gpus: dict[str, tuple[float, int]]
) -> GPUNodeReportStatus:
    """One pod, p1; `gpus` maps GPU UUID -> (allocated seconds, peak memory bytes)."""
    counters = [
        PodGPUCounters(uuid=g, allocated_seconds=s, busy_seconds=s / 2, peak_memory_bytes=m)
        for g, (s, m) in sorted(gpus.items())
    ]
    pod = PodReport(uid="p1", namespace="ml", name="pod-p1", gpus=counters)
    return GPUNodeReportStatus(epoch="e1", sequence=sequence, reported_at=at, pods=[pod])


def test_peak_gpu_memory_reaches_the_ledger_row_of_the_hour_it_was_reported_in() -> None:
    gib = 2**30
    hour = datetime(2026, 11, 3, 10, tzinfo=UTC)
    cursors, book = Cursors(), HourBook()
    first = _peak_report(
        1, hour + timedelta(minutes=40), {"g1": (600, 2 * gib), "g2": (600, 5 * gib)}
    )
    book.add(fold_report(cursors, "n0", first, SANDBOXES).deltas)
    # The open hour keeps its peak across an operator restart (the checkpoint).
    cursors, book = checkpoint.decode(checkpoint.encode(cursors, book))
    # The next report spans the hour boundary: its peak was seen at 11:10, not before 11:00.
    second = _peak_report(
        2, hour + timedelta(minutes=70), {"g1": (2400, 6 * gib), "g2": (2400, 5 * gib)}
    )
    deltas = fold_report(cursors, "n0", second, SANDBOXES).deltas
    by_hour = [(d.hour.hour, d.gpu_uuid, d.peak_memory_bytes) for d in deltas]
    assert sorted(by_hour) == [
        (10, "g1", None), (10, "g2", None), (11, "g1", 6 * gib), (11, "g2", 5 * gib),
    ]  # fmt: skip
    book.add(deltas)
    closed = book.close(hour + timedelta(hours=3), {}, CARD)
    peaks = {c.hour.hour: [r.peak_gpu_memory_bytes for r in c.rows] for c in closed}
    assert peaks == {10: [5 * gib], 11: [6 * gib]}  # the most on any one GPU, never a sum


def test_a_version_1_checkpoint_without_peak_memory_still_loads() -> None:
    cursors, book = Cursors(), HourBook()
    at = datetime(2026, 11, 3, 10, 40, tzinfo=UTC)
    book.add(
        fold_report(cursors, "n0", _peak_report(1, at, {"g1": (600, 2**30)}), SANDBOXES).deltas
    )
    doc = json.loads(checkpoint.encode(cursors, book))
    doc["version"] = 1
    doc["book"]["open"] = [row[:6] for row in doc["book"]["open"]]
    _, restored = checkpoint.decode(json.dumps(doc).encode())
    (bucket,) = restored.open[datetime(2026, 11, 3, 10, tzinfo=UTC)].values()
    assert (bucket.allocated_seconds, bucket.peak_memory_bytes) == (600, None)
