from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxer.metering.counters import CounterBook, PairCounters, PodRef
from sandboxer.metering.probe import DeviceSample, ProcessSample

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POD = PodRef("team-a", "nb-0", "uid-a")
GPU = "GPU-aaaa"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def gpu(
    util: float | None = 50.0, energy: int | None = 0, processes: tuple[ProcessSample, ...] = ()
) -> DeviceSample:
    return DeviceSample(uuid=GPU, index=0, utilization_percent=util, processes=processes,
                        utilization_signal="DutyCycle", energy_millijoules=energy)  # fmt: skip


def only(book: CounterBook) -> PairCounters:
    (pair,) = book.pairs()
    return pair


def test_first_sight_credits_nothing_then_each_interval() -> None:
    book = CounterBook(sample_interval=10)
    book.observe(at(0), [gpu(50, 0)], {GPU: POD})
    assert only(book).allocated_seconds == 0
    book.observe(at(10), [gpu(50, 3_000_000)], {GPU: POD})
    book.observe(at(20), [gpu(100, 5_000_000)], {GPU: POD})
    pair = only(book)
    assert pair.allocated_seconds == pytest.approx(20)
    assert pair.busy_seconds == pytest.approx(5 + 10)
    assert pair.energy_joules == pytest.approx(5000)
    assert pair.utilization_percent == 100


def test_sampling_gap_is_capped_at_two_intervals() -> None:
    book = CounterBook(sample_interval=10)
    book.observe(at(0), [gpu(100, 0)], {GPU: POD})
    book.observe(at(100), [gpu(100, 1_000_000)], {GPU: POD})  # 90 s unobserved
    pair = only(book)
    assert pair.allocated_seconds == pytest.approx(20)
    assert pair.busy_seconds == pytest.approx(20)
    assert pair.energy_joules == pytest.approx(1000 * 20 / 100)  # scaled like the time


def test_clock_going_backwards_never_subtracts() -> None:
    book = CounterBook(sample_interval=10)
    book.observe(at(10), [gpu(100, 1000)], {GPU: POD})
    book.observe(at(5), [gpu(100, 2000)], {GPU: POD})
    assert only(book).allocated_seconds == 0


def test_gpu_reset_energy_going_backwards_is_not_subtracted() -> None:
    book = CounterBook(sample_interval=10)
    book.observe(at(0), [gpu(0, 9_000_000)], {GPU: POD})
    book.observe(at(10), [gpu(0, 9_500_000)], {GPU: POD})
    book.observe(at(20), [gpu(0, 200_000)], {GPU: POD})  # driver reloaded
    book.observe(at(30), [gpu(0, 900_000)], {GPU: POD})
    assert only(book).energy_joules == pytest.approx(500 + 700)


def test_lost_gpu_mid_run_credits_nothing_and_recovers_cleanly() -> None:
    book = CounterBook(sample_interval=10)
    book.observe(at(0), [gpu(100, 0)], {GPU: POD})
    book.observe(at(10), [gpu(100, 1_000_000)], {GPU: POD})
    lost = DeviceSample(uuid=GPU, state="Lost", message="GPU is lost")
    book.observe(at(20), [lost], {GPU: POD})
    book.observe(at(30), [lost], {GPU: POD})
    assert only(book).utilization_percent is None
    book.observe(at(40), [gpu(100, 50_000)], {GPU: POD})  # back, counter reset by the reset
    book.observe(at(50), [gpu(100, 1_050_000)], {GPU: POD})
    pair = only(book)
    assert pair.allocated_seconds == pytest.approx(10 + 10 + 10)
    assert pair.energy_joules == pytest.approx(1000 + 1000)


def test_mig_devices_are_counted_per_device_with_process_presence() -> None:
    book = CounterBook(sample_interval=10)
    mig_a = DeviceSample(uuid="MIG-a", parent_uuid=GPU, mig_profile="1g.10gb",
                         utilization_percent=100.0, utilization_signal="ProcessPresence",
                         processes=(ProcessSample(10, 3 * 2**30),))  # fmt: skip
    mig_b = DeviceSample(uuid="MIG-b", parent_uuid=GPU, mig_profile="1g.10gb",
                         utilization_percent=0.0, utilization_signal="ProcessPresence")  # fmt: skip
    other = PodRef("team-b", "nb-0", "uid-b")
    holders = {"MIG-a": POD, "MIG-b": other}
    for t in (0, 10, 20):
        book.observe(at(t), [gpu(None, None), mig_a, mig_b], holders, {10: "uid-a"})
    pairs = {p.gpu_uuid: p for p in book.pairs()}
    assert set(pairs) == {"MIG-a", "MIG-b"}
    assert pairs["MIG-a"].busy_seconds == pytest.approx(20)
    assert pairs["MIG-a"].peak_memory_bytes == 3 * 2**30
    assert pairs["MIG-a"].last_active_at == at(20)
    assert pairs["MIG-b"].allocated_seconds == pytest.approx(20)
    assert pairs["MIG-b"].busy_seconds == 0
    assert pairs["MIG-b"].last_active_at is None


def test_last_active_needs_activity_not_a_held_context() -> None:
    book = CounterBook(sample_interval=10, active_threshold=5)
    book.observe(at(0), [gpu(3)], {GPU: POD})
    assert only(book).last_active_at is None
    foreign = ProcessSample(99, 2**30)
    book.observe(at(10), [gpu(0, processes=(foreign,))], {GPU: POD}, {99: "uid-other"})
    assert only(book).last_active_at is None  # another pod's process is not this pod's activity
    assert only(book).peak_memory_bytes == 0
    # The pod's own process at 0 %: an idle kernel holding its CUDA context, not activity.
    book.observe(at(20), [gpu(0, processes=(ProcessSample(5, 2**30),))], {GPU: POD}, {})
    assert only(book).last_active_at is None
    assert only(book).peak_memory_bytes == 2**30
    book.observe(at(30), [gpu(6)], {GPU: POD})
    assert only(book).last_active_at == at(30)


def test_restart_is_a_new_epoch_starting_from_zero() -> None:
    first = CounterBook(sample_interval=10)
    first.observe(at(0), [gpu(100, 0)], {GPU: POD})
    first.observe(at(10), [gpu(100, 10)], {GPU: POD})
    second = CounterBook(sample_interval=10)  # the agent restarted
    second.observe(at(20), [gpu(100, 20)], {GPU: POD})
    assert second.epoch != first.epoch
    assert only(second).allocated_seconds == 0
    assert CounterBook(epoch="fixed").epoch == "fixed"


def test_uid_resolved_later_keeps_the_counters() -> None:
    book = CounterBook(sample_interval=10)
    anonymous = PodRef("team-a", "nb-0")
    book.observe(at(0), [gpu(100)], {GPU: anonymous})
    book.observe(at(10), [gpu(100)], {GPU: anonymous})
    book.observe(at(20), [gpu(100)], {GPU: POD})
    pair = only(book)
    assert pair.pod == POD
    assert pair.allocated_seconds == pytest.approx(20)


def test_pods_that_left_are_pruned_after_retention() -> None:
    book = CounterBook(sample_interval=10, retain_seconds=60)
    book.observe(at(0), [gpu()], {GPU: POD})
    book.observe(at(10), [gpu()], {})  # the pod left
    assert book.prune(at(60)) == []
    (gone,) = book.prune(at(61))
    assert gone.pod == POD
    assert book.pairs() == []


def test_nvml_outage_keeps_held_pairs_and_their_counters() -> None:
    book = CounterBook(sample_interval=10, retain_seconds=60)
    book.observe(at(0), [gpu(100)], {GPU: POD})
    book.observe(at(10), [gpu(100)], {GPU: POD})
    for t in range(20, 320, 10):  # five minutes without any device sample
        book.observe(at(t), [], {GPU: POD})
        assert book.prune(at(t)) == []
    book.observe(at(320), [gpu(100)], {GPU: POD})
    assert only(book).allocated_seconds == pytest.approx(10 + 20)  # the gap is capped


def test_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="sample interval must be positive"):
        CounterBook(sample_interval=0)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=100),  # seconds since the previous sample
            st.one_of(st.none(), st.floats(min_value=0, max_value=100)),  # utilization
            st.integers(min_value=-(10**9), max_value=10**9),  # energy counter change (mJ)
            st.booleans(),  # GPU lost at this sample
        ),
        max_size=40,
    )
)
def test_counters_are_monotonic_and_bounded(
    steps: list[tuple[float, float | None, int, bool]],
) -> None:
    book = CounterBook(sample_interval=10)
    t, energy, previous = 0.0, 10**10, (0.0, 0.0, 0.0)
    book.observe(at(t), [gpu(0, energy)], {GPU: POD})
    for dt, util, change, lost in steps:
        t, energy = t + dt, max(energy + change, 0)
        sample = DeviceSample(uuid=GPU, state="Lost") if lost else gpu(util, energy)
        book.observe(at(t), [sample], {GPU: POD})
        pair = only(book)
        now = (pair.allocated_seconds, pair.busy_seconds, pair.energy_joules)
        assert all(a >= b for a, b in zip(now, previous, strict=True))
        assert pair.busy_seconds <= pair.allocated_seconds + 1e-9
        assert pair.allocated_seconds <= t + 1e-6 * (len(steps) + 1)  # datetime has µs steps
        previous = now
