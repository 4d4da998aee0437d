"""Idle reclaim and lifetime, driven by an injected clock (one observation per report)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandboxer.api.nodereport import GPUDevice, GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.reclaim.idle import Activity, GPUActivity, activity_from_report, observe
from sandboxer.reclaim.policy import (
    Decision,
    Keep,
    PolicyError,
    Reclaim,
    ReclaimPolicy,
    Warn,
    decide,
    effective_policy,
)
from sandboxer.reclaim.savings import SavingsPolicy, reclaimed_gpu_hours, saved_until

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday
REPORT = timedelta(seconds=30)


def klass(**idle: Any) -> SandboxClassSpec:
    extra = {k: idle.pop(k) for k in ("maxLifetime",) if k in idle}
    return SandboxClassSpec.model_validate(
        {"image": "jupyter", "gpu": {"model": "H100"}, "idle": idle, **extra}
    )


def sandbox(**spec: Any) -> ExperimentSandboxSpec:
    return ExperimentSandboxSpec.model_validate({"class": "h100", **spec})


POLICY = effective_policy("h100", klass(), sandbox())


class Clock:
    """Drives observations and decisions report by report; records what the loop would do."""

    def __init__(self, policy: ReclaimPolicy = POLICY, started: datetime = T0) -> None:
        self.policy = policy
        self.now = started
        self.started = started
        self.resumed: datetime | None = None
        self.activity: Activity | None = None
        self.log: list[tuple[datetime, Decision]] = []

    def run(self, until: timedelta, gpus: Callable[[datetime], list[GPUActivity]]) -> Decision:
        end = self.now + until
        decision: Decision = Keep(None)
        while self.now < end:
            self.now += REPORT
            self.activity = observe(self.activity, gpus(self.now), self.now, self.policy)
            decision = decide(
                self.policy,
                now=self.now,
                started_at=self.started,
                last_active_at=self.activity.last_active_at,
                resumed_at=self.resumed,
                idle_signals=self.activity.signals,
            )
            self.log.append((self.now, decision))
            if isinstance(decision, Reclaim):
                break
        return decision

    def first(self, kind: type) -> datetime | None:
        return next((t for t, d in self.log if isinstance(d, kind)), None)


def util(percent: float, processes: int = 0) -> Callable[[datetime], list[GPUActivity]]:
    return lambda _: [GPUActivity("GPU-a", percent, processes), GPUActivity("GPU-b", 0, 0)]


def test_defaults_match_field_practice() -> None:
    assert (
        ReclaimPolicy(
            idle_enabled=True,
            after=timedelta(hours=1),
            warn_before=timedelta(minutes=15),
            threshold=5.0,
            count_processes=False,  # an idle kernel holds a context: presence is not activity
            use_jupyter_activity=False,
            max_lifetime=None,
        )
        == POLICY
    )


def test_idle_exactly_at_threshold_is_reclaimed_exactly_at_the_window_end() -> None:
    clock = Clock()
    decision = clock.run(timedelta(hours=2), util(5.0))
    assert isinstance(decision, Reclaim)
    assert decision.reason == "Idle"
    assert clock.now == T0 + timedelta(hours=1)  # the decision at the boundary instant
    assert clock.first(Warn) == T0 + timedelta(minutes=45)
    assert "every GPU at or below 5%" in decision.message
    assert "GPU-a at 5%" in decision.message


def test_just_above_threshold_is_busy() -> None:
    assert isinstance(Clock().run(timedelta(hours=3), util(5.1)), Keep)


def test_flapping_utilization_keeps_resetting_the_window() -> None:
    def around_threshold(at: datetime) -> list[GPUActivity]:
        return [GPUActivity("GPU-a", 8 if (at - T0) // REPORT % 2 else 3, 0)]

    steady = Clock()
    assert isinstance(steady.run(timedelta(hours=4), around_threshold), Keep)
    assert steady.first(Warn) is None

    def burst_every_50_minutes(at: datetime) -> list[GPUActivity]:
        return [GPUActivity("GPU-a", 80 if (at - T0) // REPORT % 100 == 0 else 0, 0)]

    bursts = Clock()
    assert isinstance(bursts.run(timedelta(hours=4), burst_every_50_minutes), Keep)
    assert bursts.first(Warn) is not None  # warned in each quiet spell, never reclaimed


def test_warning_then_activity_cancels_the_reclaim() -> None:
    clock = Clock()
    warned = clock.run(timedelta(minutes=46), util(0))
    assert isinstance(warned, Warn)
    assert warned.reclaim_at == T0 + timedelta(hours=1)
    assert "will be suspended at 2026-11-24 10:00 UTC unless used" in warned.message
    busy = clock.run(REPORT, util(60))
    assert isinstance(busy, Keep)
    assert busy.next_check == clock.now + timedelta(minutes=45)
    assert isinstance(clock.run(timedelta(minutes=40), util(0)), Keep)


def test_a_held_context_at_zero_is_idle_unless_the_class_counts_processes() -> None:
    # What a real notebook that imported torch looks like: a process, memory, 0 %.
    idle = Clock().run(timedelta(hours=2), util(0, processes=1))
    assert isinstance(idle, Reclaim)
    assert "GPU-a at 0%, 1 idle process(es) holding it" in idle.message
    counting = effective_policy("h100", klass(countProcesses=True), sandbox())
    kept = Clock(counting).run(timedelta(hours=2), util(0, processes=1))
    assert isinstance(kept, Keep)


def test_a_burst_between_reports_counts_through_the_agents_last_active() -> None:
    """The report's own sample says 0 %, but the agent saw a burst since the last report."""

    def burst_seen_by_the_agent(at: datetime) -> list[GPUActivity]:
        return [GPUActivity("GPU-a", 0, 1, last_active_at=at - REPORT / 2)]

    assert isinstance(Clock().run(timedelta(hours=3), burst_seen_by_the_agent), Keep)


def test_mig_sandbox_uses_process_presence() -> None:
    policy = effective_policy("mig", klass(countProcesses=False), sandbox())
    working = Clock(policy)
    assert isinstance(
        working.run(timedelta(hours=2), lambda _: [GPUActivity("MIG-1", None, 1)]), Keep
    )
    idle = Clock(policy).run(timedelta(hours=2), lambda _: [GPUActivity("MIG-1", None, 0)])
    assert isinstance(idle, Reclaim)
    assert "MIG-1 without compute processes (MIG: no utilization reading)" in idle.message


def test_resume_is_never_reclaimed_before_a_full_window() -> None:
    clock = Clock()
    clock.run(timedelta(hours=1), util(0))
    # Suspended at 10:00; resumed at 15:00 with a stale last-active from the morning.
    clock.resumed = clock.now = T0 + timedelta(hours=6)
    clock.log.clear()
    decision = clock.run(timedelta(hours=2), util(0))
    assert isinstance(decision, Reclaim)
    assert clock.now == clock.resumed + timedelta(hours=1)
    assert clock.first(Warn) == clock.resumed + timedelta(minutes=45)


def test_jupyter_activity_keeps_a_typing_user() -> None:
    policy = effective_policy("h100", klass(useJupyterActivity=True), sandbox())
    activity = None
    now = T0
    for _ in range(240):  # two hours of reports, GPUs idle, user typing a minute ago
        now += REPORT
        activity = observe(
            activity, [GPUActivity("GPU-a", 0, 0)], now, policy,
            jupyter_last_activity=now - timedelta(minutes=1),
        )  # fmt: skip
    assert activity is not None
    assert activity.last_active_at == now - timedelta(minutes=1)
    assert "Jupyter last active" in activity.signals
    assert isinstance(
        decide(policy, now=now, started_at=T0, last_active_at=activity.last_active_at), Keep
    )


def test_opt_out_only_where_the_class_allows() -> None:
    with pytest.raises(PolicyError, match="does not allow turning idle reclaim off"):
        effective_policy("h100", klass(), sandbox(idle={"disabled": True}))
    allowed = effective_policy("h100", klass(allowOptOut=True), sandbox(idle={"disabled": True}))
    assert not allowed.idle_enabled
    assert isinstance(Clock(allowed).run(timedelta(hours=5), util(0)), Keep)


def test_idle_after_override_within_bounds() -> None:
    roomy = klass(after="1h", maxAfter="4h")
    assert effective_policy("h", roomy, sandbox(idle={"after": "3h"})).after == timedelta(hours=3)
    assert effective_policy("h", klass(), sandbox(idle={"after": "30m"})).after == timedelta(
        minutes=30
    )
    with pytest.raises(
        PolicyError, match=r"longer than class h allows \(4h\); set idle.after to 4h"
    ):
        effective_policy("h", roomy, sandbox(idle={"after": "5h"}))
    with pytest.raises(PolicyError, match="class h allows \\(1h\\)"):
        effective_policy("h", klass(), sandbox(idle={"after": "2h"}))
    with pytest.raises(PolicyError, match="must be longer than the class's warning time"):
        effective_policy("h", klass(), sandbox(idle={"after": "10m"}))


def test_lifetime_off_by_default_then_class_maximum_and_own_shorter_lifetime() -> None:
    assert POLICY.max_lifetime is None
    busy = util(90)
    capped = effective_policy("h", klass(maxLifetime="8h"), sandbox())
    clock = Clock(capped)
    decision = clock.run(timedelta(hours=9), busy)
    assert isinstance(decision, Reclaim)
    assert decision.reason == "Lifetime"
    assert clock.now == T0 + timedelta(hours=8)
    assert clock.first(Warn) == T0 + timedelta(hours=7, minutes=45)
    assert "the maximum lifetime is 8h" in decision.message
    own = effective_policy("h", klass(maxLifetime="8h"), sandbox(lifetime="2h"))
    assert own.max_lifetime == timedelta(hours=2)
    with pytest.raises(PolicyError, match="lifetime 9h is longer than class h allows"):
        effective_policy("h", klass(maxLifetime="8h"), sandbox(lifetime="9h"))


def test_lifetime_restarts_on_resume_and_wins_a_tie() -> None:
    policy = effective_policy("h", klass(maxLifetime="1h"), sandbox())
    resumed = T0 + timedelta(hours=5)
    kept = decide(policy, now=resumed + timedelta(minutes=30), started_at=T0, resumed_at=resumed)
    assert isinstance(kept, Keep)
    tie = decide(policy, now=T0 + timedelta(hours=1), started_at=T0)
    assert isinstance(tie, Reclaim)
    assert tie.reason == "Lifetime"


def test_cpu_sandbox_is_idle_reclaimed_only_on_jupyter_activity() -> None:
    # No GPU and no Jupyter activity read: nothing could say it is idle.
    assert not effective_policy("cpu", klass(), sandbox(gpus=0)).idle_enabled
    # With useJupyterActivity the policy is on; the loop judges it by Jupyter alone, and only
    # once a reading exists (tests/unit/test_jupyter_reclaim.py).
    policy = effective_policy("cpu", klass(useJupyterActivity=True), sandbox(gpus=0))
    assert policy.idle_enabled and policy.use_jupyter_activity


def test_activity_from_report_maps_pod_gpus_to_device_signals() -> None:
    report = GPUNodeReportStatus(
        gpus=[
            GPUDevice(uuid="GPU-a", utilization_percent=40, utilization_signal="DutyCycle"),
            GPUDevice(uuid="MIG-1", processes=2, utilization_signal="ProcessPresence"),
        ],
        pods=[
            PodReport(uid="p1", namespace="ml", name="x", gpus=[PodGPUCounters(uuid="GPU-a")]),
            PodReport(uid="p2", namespace="ml", name="y", gpus=[PodGPUCounters(uuid="MIG-1")]),
        ],
    )
    assert activity_from_report(report, "p1") == [GPUActivity("GPU-a", 40, 0)]
    assert activity_from_report(report, "p2") == [GPUActivity("MIG-1", None, 2)]
    assert activity_from_report(report, "nobody") == []


@pytest.mark.parametrize(
    ("reclaimed", "hours"),
    [
        (datetime(2026, 11, 24, 10, 0, tzinfo=UTC), 8.0),  # Tuesday morning -> 18:00
        (datetime(2026, 11, 24, 19, 0, tzinfo=UTC), 12.0),  # evening -> capped at 12 h
        (datetime(2026, 11, 28, 10, 0, tzinfo=UTC), 12.0),  # Saturday -> capped
    ],
)
def test_savings_to_end_of_workday(reclaimed: datetime, hours: float) -> None:
    assert reclaimed_gpu_hours(2, 0.5, reclaimed, SavingsPolicy()) == pytest.approx(hours)


def test_savings_in_a_local_time_zone_and_horizon_mode() -> None:
    berlin = SavingsPolicy(timezone="Europe/Berlin")
    at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 11:00 in Berlin, workday ends 17:00 UTC
    assert saved_until(at, berlin) == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    horizon = SavingsPolicy(mode="Horizon", horizon=timedelta(hours=3))
    assert reclaimed_gpu_hours(1, 1 / 7, at, horizon) == pytest.approx(3 / 7)
