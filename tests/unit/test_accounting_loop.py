"""The cluster-wide loop's engine on synthetic snapshots with an injected clock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandboxer.api.budget import ComputeBudgetSpec
from sandboxer.api.nodereport import GPUDevice, GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.api.ratecard import RateCardSpec
from sandboxer.api.sandbox import ExperimentSandboxSpec, ExperimentSandboxStatus
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.budgets.matching import Account
from sandboxer.budgets.periods import Period
from sandboxer.budgets.status import Friction, FrictionBook, UsageSlice
from sandboxer.ledger.rows import UsageRow
from sandboxer.ledger.store import DirectoryLedgerStore
from sandboxer.loop.accounting_loop import AccountingLoop
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import SandboxView, Snapshot
from sandboxer.loop.usage import UsageTotals
from sandboxer.sandbox_rules import BudgetRequest

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GPU = "GPU-0000"
CLASS = SandboxClassSpec.model_validate(
    {
        "image": "nb:1",
        "gpu": {"model": "H100"},
        "idle": {"after": "10m", "warnBefore": "2m", "threshold": 5},
    }
)
CARD = RateCardSpec.model_validate(
    {"currency": "USD", "prices": [{"model": "H100", "effectiveFrom": "2026-01-01T00:00:00Z",
                                    "listPrice": 4.0, "contractedPrice": 3.0}]}
)  # fmt: skip


def budget(hours: float, on_exhausted: str = "Suspend") -> ComputeBudgetSpec:
    return ComputeBudgetSpec.model_validate(
        {
            "subjects": [{"kind": "User", "name": "alice"}],
            "allowance": {"gpuHours": hours},
            "onExhausted": on_exhausted,
            "warnAt": [50],
        }
    )


class World:
    """One node, one sandbox of alice holding one GPU, reports every 30 s."""

    def __init__(self, tmp: Path, allowance: float = 100.0) -> None:
        self.engine = AccountingLoop(
            DirectoryLedgerStore(tmp),
            LoopSettings(usage_refresh=timedelta(0), budget_refresh=timedelta(0)),
        )
        self.now = T0
        self.seq = 0
        self.allocated = 0.0
        self.busy = 0.0
        self.util = 0.0
        self.last_busy_at: datetime | None = None
        self.suspended = False
        self.budgets = {"researchers": budget(allowance)}
        self.budget_statuses: dict[str, dict[str, Any]] = {}  # as stored by the API
        self.status = ExperimentSandboxStatus.model_validate(
            {
                "node": "node-a",
                "startedAt": T0.isoformat(),
                "conditions": [{"type": "Ready", "status": "True", "reason": "NotebookReady",
                                "lastTransitionTime": T0.isoformat()}],
            }
        )  # fmt: skip

    def view(self) -> SandboxView:
        spec = ExperimentSandboxSpec.model_validate(
            {"class": "h100", "gpus": 1, "owner": "alice", "suspend": self.suspended}
        )
        return SandboxView("sb-uid", "team", "nb", 1, spec, self.status)

    def snapshot(self) -> Snapshot:
        report = GPUNodeReportStatus(
            node="node-a",
            epoch="e1",
            sequence=self.seq,
            reported_at=self.now,
            gpus=[
                GPUDevice(uuid=GPU, utilization_percent=self.util, utilization_signal="DutyCycle")
            ],
            pods=[
                PodReport(
                    uid="pod-uid",
                    namespace="team",
                    name="nb-0",
                    gpus=[
                        PodGPUCounters(
                            uuid=GPU,
                            allocated_seconds=self.allocated,
                            busy_seconds=self.busy,
                            utilization_percent=self.util,
                        )
                    ],
                )
            ],
        )
        return Snapshot(
            now=self.now,
            sandboxes={("team", "nb"): self.view()},
            pods={"pod-uid": ("team", "nb")},
            classes={"h100": CLASS},
            budgets=self.budgets,
            rate_card=CARD,
            reports={"node-a": report},
            budget_statuses=dict(self.budget_statuses),
        )

    def advance(self, seconds: float, util: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seq += 1
        if not self.suspended:
            self.allocated += seconds
            self.busy += seconds * util / 100
        self.util = util

    def step(self, seconds: float = 30, util: float = 0.0):  # type: ignore[no-untyped-def]
        self.advance(seconds, util)
        result = self.engine.run_pass(self.snapshot())
        for write in result.sandbox_writes:
            merged = {**self.status.dump(), **write.status}
            self.status = ExperimentSandboxStatus.model_validate(
                {k: v for k, v in merged.items() if v is not None}
            )
            self.suspended = self.suspended or write.suspend
        for budget_write in result.budget_writes:
            self.budget_statuses[budget_write.name] = budget_write.status
        return result


def test_closed_hours_are_written_priced_and_shown_in_sandbox_usage(tmp_path: Path) -> None:
    world = World(tmp_path)
    for _ in range(130):  # 65 minutes at 80 % busy
        world.step(30, util=80)
    rows = list(world.engine.store.read_rows(T0, T0 + timedelta(hours=2)))
    assert len(rows) == 1
    row = rows[0]
    assert (row.owner, row.sandbox_class, row.gpu_model) == ("alice", "h100", "H100")
    assert row.allocated_gpu_hours == pytest.approx(1.0, abs=1e-6)
    assert row.busy_gpu_hours == pytest.approx(0.8, abs=1e-6)
    assert row.cost == pytest.approx(3.0, abs=1e-6)
    assert world.engine.store.get_watermark() == T0 + timedelta(hours=1)
    usage = world.status.usage
    assert usage is not None
    assert usage.gpu_hours == pytest.approx(65 / 60, abs=1e-3)


def test_idle_sandbox_is_warned_then_reclaimed_and_busy_one_is_not(tmp_path: Path) -> None:
    busy = World(tmp_path / "busy")
    for _ in range(40):
        result = busy.step(30, util=60)
        assert not [e for e in result.events if e.reason in ("IdleWarning", "IdleReclaimed")]
    assert not busy.suspended

    idle = World(tmp_path / "idle")
    idle.engine.run_pass(idle.snapshot())  # the loop was watching when the sandbox started
    warned_at = reclaimed_at = None
    for i in range(40):
        result = idle.step(30, util=0)
        reasons = {e.reason for e in result.events}
        if "IdleWarning" in reasons and warned_at is None:
            warned_at = i
        if idle.suspended and reclaimed_at is None:
            reclaimed_at = i
            assert idle.status.suspended_reason == "Idle"
            ((_, reason, saved),) = result.reclaimed
            assert reason == "Idle"
            assert saved > 0
    assert warned_at is not None
    assert reclaimed_at is not None
    # Warned 2 minutes (4 passes) before the 10-minute window ends, reclaimed at its end.
    assert reclaimed_at - warned_at == 4
    assert (reclaimed_at + 1) * 30 == 600


def test_budget_warns_then_suspends_and_admission_refuses(tmp_path: Path) -> None:
    world = World(tmp_path, allowance=0.05)  # three GPU-minutes
    reasons: list[str] = []
    for _ in range(20):
        result = world.step(30, util=90)
        reasons += [e.reason for e in result.events if e.kind == "ExperimentSandbox"]
        if world.suspended:
            break
    assert world.suspended
    assert world.status.suspended_reason == "BudgetExhausted"
    assert reasons.index("BudgetWarning") < reasons.index("BudgetExhausted")
    budget_cond = next(c for c in world.status.conditions if c.type == "BudgetExceeded")
    assert (budget_cond.status, budget_cond.reason) == ("True", "BudgetExhausted")
    decision = world.engine.admit(
        BudgetRequest("CREATE", "alice", "team", "nb2", "h100", 1, 1.0, False),
        world.snapshot(),
    )
    assert not decision.allowed
    assert "alice" in decision.message
    assert "researchers" in decision.message
    # A top-up lets alice start again.
    world.budgets = {"researchers": budget(100.0)}
    world.step(30, util=0)
    again = world.engine.admit(
        BudgetRequest("CREATE", "alice", "team", "nb2", "h100", 1, 1.0, False), world.snapshot()
    )
    assert again.allowed, again.message


def test_owner_without_budget_is_refused_by_default(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.step()
    decision = world.engine.admit(
        BudgetRequest("CREATE", "carol", "team", "x", "h100", 1, 1.0, False), world.snapshot()
    )
    assert not decision.allowed
    assert "no ComputeBudget covers carol" in decision.message


def test_restarted_engine_neither_loses_nor_double_counts(tmp_path: Path) -> None:
    world = World(tmp_path)
    for _ in range(60):
        world.step(30, util=50)
    # The operator restarts: a new engine on the same ledger, same cumulative reports.
    world.engine = AccountingLoop(world.engine.store, world.engine.settings)
    for _ in range(80):
        world.step(30, util=50)
    rows = list(world.engine.store.read_rows(T0, T0 + timedelta(hours=3)))
    total = sum(r.allocated_gpu_hours for r in rows)
    # 140 passes of 30 s = 70 minutes; the first hour is closed, the rest is open.
    open_hours = sum(r.allocated_gpu_hours for r in world.engine.book.open_rows(CARD))
    assert total + open_hours == pytest.approx(140 * 30 / 3600, abs=1e-6)


def test_idle_warning_and_reclaim_reach_the_owners_budget_webhook(tmp_path: Path) -> None:
    world = World(tmp_path)
    spec = budget(100.0).model_dump(by_alias=True)
    spec["notify"] = {"webhookUrl": "https://hooks.example.com/T000/B000"}
    world.budgets = {"researchers": ComputeBudgetSpec.model_validate(spec)}
    notes = []
    for _ in range(25):
        notes += world.step(30, util=0).notifications
    titles = [n.payload["text"] for n in notes]
    assert any("will be suspended (Idle)" in t for t in titles), titles
    assert any("was suspended (Idle)" in t for t in titles), titles
    assert all(n.url == "https://hooks.example.com/T000/B000" for n in notes)


def test_admission_and_the_pass_touch_shared_state_only_under_its_lock(tmp_path: Path) -> None:
    """Admission (event loop thread) and run_pass (worker thread) both read and change the
    friction counters and usage totals: every such access must hold SharedState.lock."""
    world = World(tmp_path, allowance=0.05)
    shared = world.engine.shared
    unlocked: list[str] = []

    class GuardedFriction(FrictionBook):
        def get(self, period: str, account: Account) -> Friction:
            if not shared.lock.locked():
                unlocked.append("friction")
            return super().get(period, account)

    class GuardedTotals(UsageTotals):
        def add_closed(self, rows: Iterable[UsageRow]) -> None:
            if not shared.lock.locked():
                unlocked.append("totals.add_closed")
            super().add_closed(rows)

        def slices(self, period: Period, open_rows: Iterable[UsageRow]) -> list[UsageSlice]:
            if not shared.lock.locked():
                unlocked.append("totals.slices")
            return super().slices(period, open_rows)

    shared.friction, shared.totals = GuardedFriction(), GuardedTotals()
    request = BudgetRequest("CREATE", "alice", "team", "nb2", "h100", 1, 1.0, False)
    assert not world.engine.admit(request, world.snapshot()).allowed  # before the first pass
    for _ in range(140):  # past an hour: hours close, the allowance runs out, waits count
        world.step(30, util=90)
        world.engine.admit(request, world.snapshot())
    assert world.suspended
    assert shared.friction.counters  # refusals and the exhaustion were counted
    assert shared.totals.by_period  # the closed hour was summed
    assert unlocked == []


def test_a_burst_inside_one_pass_cannot_pass_the_concurrency_cap(tmp_path: Path) -> None:
    world = World(tmp_path)
    capped = budget(100.0).model_copy(update={"max_concurrent_gpus": 3})
    world.budgets = {"researchers": capped}
    world.step()  # alice's nb holds one of the three

    def ask(name: str, dry_run: bool = False) -> bool:
        request = BudgetRequest("CREATE", "alice", "team", name, "h100", 1, 1.0, dry_run)
        return world.engine.admit(request, world.snapshot()).allowed

    assert ask("dry", dry_run=True)  # a dry run reserves nothing
    burst = [ask(f"burst-{i}") for i in range(5)]
    assert burst == [True, True, False, False, False]
    refusal = world.engine.admit(
        BudgetRequest("CREATE", "alice", "team", "sixth", "h100", 1, 1.0, False), world.snapshot()
    )
    assert "3 of the 3 GPUs" in refusal.message and "maxConcurrentGpus" in refusal.message
    assert ask("burst-0")  # the same sandbox asking again does not count itself twice
    # Creates that never arrive stop counting once their reservation runs out.
    world.now += world.engine.settings.reservation_ttl
    assert ask("later")


def test_a_new_leader_continues_the_announcements_and_friction_in_budget_status(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, allowance=0.5)  # warnAt 50 %: after 15 GPU-minutes
    warnings = 0
    while warnings == 0:
        result = world.step(60, util=90)
        warnings += sum(
            e.reason == "BudgetWarning" for e in result.events if e.kind == "ComputeBudget"
        )
    too_big = BudgetRequest("CREATE", "alice", "team", "big", "h100", 8, 1.0, False)
    assert not world.engine.admit(too_big, world.snapshot()).allowed
    world.step(60, util=90)
    [stored] = world.budget_statuses["researchers"]["subjects"]
    assert (stored["warned"], stored["refusals"]) == ([50], 1)

    # The operator restarts (or another replica takes over): only the API remembers.
    world.engine = AccountingLoop(world.engine.store, world.engine.settings)
    again = 0
    for _ in range(5):
        result = world.step(60, util=90)
        again += sum(e.reason == "BudgetWarning" for e in result.events)
    assert again == 0  # announced once, by whichever leader
    assert not world.engine.admit(too_big, world.snapshot()).allowed
    world.step(60, util=90)
    [kept] = world.budget_statuses["researchers"]["subjects"]
    assert (kept["warned"], kept["refusals"]) == ([50], 2)
