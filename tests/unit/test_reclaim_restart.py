"""Idle tracking across an operator restart: a new engine continues from the sandbox's status."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sandboxer.api.sandbox import ExperimentSandboxSpec, ExperimentSandboxStatus
from sandboxer.loop.accounting_loop import AccountingLoop
from sandboxer.loop.reclaim import seeded
from sandboxer.loop.snapshot import SandboxView
from tests.unit.test_accounting_loop import T0, World

WARNINGS = ("IdleWarning", "LifetimeWarning")


def restart(world: World) -> None:
    """A new leader: a fresh engine on the same ledger, with only what status kept."""
    world.engine = AccountingLoop(world.engine.store, world.engine.settings)


def run(world: World, until: timedelta, util: float, log: list[tuple[timedelta, str]]) -> None:
    """Report every 30 s up to T0 + until (or the reclaim); log (time, reason) of each Event."""
    while world.now < T0 + until and not world.suspended:
        result = world.step(30, util=util)
        log += [(world.now - T0, e.reason) for e in result.events]


def watched(tmp: Path) -> World:
    world = World(tmp)
    world.engine.run_pass(world.snapshot())  # the loop was watching when the sandbox started
    return world


def test_restart_after_the_warning_reclaims_on_schedule_without_a_second_warning(
    tmp_path: Path,
) -> None:
    world = watched(tmp_path)
    log: list[tuple[timedelta, str]] = []
    run(world, timedelta(minutes=9), 0, log)  # idle from the start; warned at 8 min
    assert log == [(timedelta(minutes=8), "IdleWarning")]
    status = world.status
    assert (status.idle_since, status.warned_at) == (T0, T0 + timedelta(minutes=8))
    assert status.reclaim_at == T0 + timedelta(minutes=10)

    restart(world)
    run(world, timedelta(minutes=20), 0, log)
    assert world.suspended
    assert log == [
        (timedelta(minutes=8), "IdleWarning"),
        (timedelta(minutes=10), "IdleReclaimed"),  # the original schedule
    ]


def test_restart_before_the_warning_keeps_the_window(tmp_path: Path) -> None:
    world = watched(tmp_path)
    log: list[tuple[timedelta, str]] = []
    run(world, timedelta(minutes=5), 0, log)
    assert world.status.idle_since == T0 and world.status.reclaim_at is None
    restart(world)
    run(world, timedelta(minutes=20), 0, log)
    assert log == [(timedelta(minutes=8), "IdleWarning"), (timedelta(minutes=10), "IdleReclaimed")]


def test_busy_just_before_the_restart_gets_a_full_window_of_watched_quiet(tmp_path: Path) -> None:
    world = watched(tmp_path)
    log: list[tuple[timedelta, str]] = []
    run(world, timedelta(minutes=20), 60, log)  # busy until 30 s before the restart
    assert world.status.idle_since is None
    restart(world)
    run(world, timedelta(minutes=40), 0, log)
    # Before: the first idle report after the restart reclaimed at once (anchor: the start).
    # Now the window runs from the new leader's first pass, at 20.5 min.
    assert log == [
        (timedelta(minutes=28, seconds=30), "IdleWarning"),
        (timedelta(minutes=30, seconds=30), "IdleReclaimed"),
    ]


def test_activity_clears_what_status_kept_and_a_restart_then_warns_again(tmp_path: Path) -> None:
    world = watched(tmp_path)
    log: list[tuple[timedelta, str]] = []
    run(world, timedelta(minutes=9), 0, log)
    assert world.status.warned_at is not None
    run(world, timedelta(minutes=9, seconds=30), 70, log)  # used again: warning withdrawn
    status = world.status
    assert (status.idle_since, status.warned_at, status.reclaim_at) == (None, None, None)
    restart(world)
    run(world, timedelta(minutes=40), 0, log)
    assert log == [
        (timedelta(minutes=8), "IdleWarning"),
        (timedelta(minutes=18), "IdleWarning"),  # a new window from the new leader's first pass
        (timedelta(minutes=20), "IdleReclaimed"),
    ]


def test_restarts_every_few_minutes_still_warn_once(tmp_path: Path) -> None:
    world = watched(tmp_path)
    log: list[tuple[timedelta, str]] = []
    for minutes in range(2, 14, 2):
        run(world, timedelta(minutes=minutes), 0, log)
        restart(world)
    assert [reason for _, reason in log] == ["IdleWarning", "IdleReclaimed"]
    assert log[-1][0] == timedelta(minutes=10)


class ShortLived(World):
    def view(self) -> SandboxView:
        view = super().view()
        spec = view.spec.model_copy(update={"lifetime": "15m"})
        return SandboxView(view.uid, view.namespace, view.name, 1, spec, view.status)


def test_a_lifetime_warning_to_a_busy_sandbox_is_not_repeated_after_a_restart(
    tmp_path: Path,
) -> None:
    world = ShortLived(tmp_path)
    world.engine.run_pass(world.snapshot())
    log: list[tuple[timedelta, str]] = []
    run(world, timedelta(minutes=14), 60, log)
    assert world.status.idle_since is None
    assert world.status.reclaim_at == T0 + timedelta(minutes=15)
    restart(world)
    run(world, timedelta(minutes=20), 60, log)
    assert log == [
        (timedelta(minutes=13), "LifetimeWarning"),
        (timedelta(minutes=15), "LifetimeExceeded"),
    ]


def _view(status: dict[str, str], suspend: bool = False) -> SandboxView:
    spec = ExperimentSandboxSpec.model_validate({"class": "h100", "suspend": suspend})
    full = {"startedAt": T0.isoformat(), **status}
    return SandboxView("uid", "team", "nb", 1, spec, ExperimentSandboxStatus.model_validate(full))


def test_seeding_from_status() -> None:
    leader = T0 + timedelta(minutes=30)
    idle = seeded(
        _view(
            {
                "idleSince": "2026-11-26T10:05:00Z",
                "warnedAt": "2026-11-26T10:13:00Z",
                "reclaimAt": "2026-11-26T10:15:00Z",
            }
        ),
        leader,
        leader,
    )
    assert (idle.quiet_from, idle.warned_for) == (
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=15),
    )
    assert idle.warned_at == T0 + timedelta(minutes=13)
    assert idle.idle_since() == T0 + timedelta(minutes=5)  # kept in status before any report

    # Said nothing: busy or unknown. The window starts at this leader's first sight.
    quiet = seeded(_view({}), leader + timedelta(microseconds=5), leader)
    assert quiet.quiet_from == leader and quiet.idle_since() is None

    # Started after this leader's first pass: watched from its start, no floor.
    assert seeded(_view({}), leader, T0 - timedelta(minutes=1)).quiet_from is None

    # A warning older than the start belongs to an earlier run; a suspended sandbox keeps nothing.
    stale = seeded(
        _view({"idleSince": T0.isoformat(), "reclaimAt": "2026-11-26T09:00:00Z"}), leader, leader
    )
    assert stale.warned_for is None
    assert (
        seeded(_view({"idleSince": T0.isoformat()}, suspend=True), leader, leader).quiet_from
        is None
    )
