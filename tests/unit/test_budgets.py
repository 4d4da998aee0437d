"""Budgets: periods, matching, status, admission messages, enforcement, notifications."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxer.api.budget import ComputeBudgetSpec
from sandboxer.budgets import enforcement, gate, notify
from sandboxer.budgets.gate import NoBudgetPolicy, SandboxRequest
from sandboxer.budgets.matching import Account, Budget, Person, accounts_for, applicable
from sandboxer.budgets.periods import Period, parse_period, period_at
from sandboxer.budgets.status import (
    AccountStatus,
    FrictionBook,
    RunningSandbox,
    UsageSlice,
    account_statuses,
    budget_status,
    sandbox_budget,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOV = period_at("Monthly", NOW)
ALICE = Person("alice", frozenset({"vision", "staff"}), "ml")
GROUPS = {"alice": ALICE.groups, "bob": frozenset({"vision"}), "carol": frozenset()}


def budget(name: str = "team-vision", **spec: Any) -> Budget:
    spec.setdefault("subjects", [{"kind": "Group", "name": "vision"}])
    spec.setdefault("allowance", {"gpuHours": 200})
    return Budget(name, ComputeBudgetSpec.model_validate(spec))


def h100(gpus: int, owner: str = "alice", cls: str = "h100") -> RunningSandbox:
    return RunningSandbox(
        f"u-{owner}-{gpus}", f"sb-{owner}", "ml", owner, cls, gpus, 1.0, 4.0 * gpus
    )


def status_of(
    b: Budget, used: float, running: Sequence[RunningSandbox] = (), owner: str = "alice"
) -> AccountStatus:
    usage = [UsageSlice(owner, "ml", "h100", used, used * 4.0, "USD")]
    statuses = account_statuses(b, NOV, usage, running, GROUPS, NOW)
    return statuses[Account(b.name, "User", owner)]


def request(gpus: int = 4, cls: str = "h100", person: Person = ALICE) -> SandboxRequest:
    return SandboxRequest(person, "nb", cls, "H100", None, gpus, 1.0, hourly_cost=4.0 * gpus)


# --- periods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "name", "start", "end"),
    [
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), "2026-11", "2026-11-01", "2026-12-01"),
        (datetime(2026, 12, 1, tzinfo=UTC), "2026-12", "2026-12-01", "2027-01-01"),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "2026-12", "2026-12-01", "2027-01-01"),
    ],
)
def test_monthly_period_boundaries(at: datetime, name: str, start: str, end: str) -> None:
    period = period_at("Monthly", at)
    assert (period.name, f"{period.start:%Y-%m-%d}", f"{period.end:%Y-%m-%d}") == (name, start, end)
    assert at in period
    assert period.end not in period


@pytest.mark.parametrize(
    ("at", "name", "monday"),
    [
        (datetime(2026, 11, 29, 23, 59, tzinfo=UTC), "2026-W48", "2026-11-23"),  # Sunday
        (datetime(2026, 11, 30, 0, 0, tzinfo=UTC), "2026-W49", "2026-11-30"),  # Monday
        (datetime(2027, 1, 1, tzinfo=UTC), "2026-W53", "2026-12-28"),  # ISO year != calendar year
        (datetime(2024, 12, 31, tzinfo=UTC), "2025-W01", "2024-12-30"),
    ],
)
def test_weekly_period_is_iso_week_starting_monday(at: datetime, name: str, monday: str) -> None:
    period = period_at("Weekly", at)
    assert (period.name, f"{period.start:%Y-%m-%d}") == (name, monday)
    assert period.end - period.start == timedelta(days=7)
    assert parse_period(name) == period


def test_period_from_another_time_zone_uses_utc() -> None:
    tokyo = datetime(2026, 12, 1, 8, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo")
    )
    assert period_at("Monthly", tokyo).name == "2026-12"
    assert period_at("Monthly", tokyo - timedelta(hours=9)).name == "2026-11"


@pytest.mark.parametrize("bad", ["2026-13", "2026-W54", "26-11", "2026-11-01", ""])
def test_bad_period_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period(bad)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        period_at("Monthly", datetime(2026, 11, 1))


# --- matching --------------------------------------------------------------------------------


def test_matching_by_user_group_and_namespace() -> None:
    by_user = budget("u", subjects=[{"kind": "User", "name": "alice"}])
    by_group = budget("g", subjects=[{"kind": "Group", "name": "vision"}])
    by_ns = budget("n", subjects=[{"kind": "Namespace", "name": "ml"}])
    other = budget("o", subjects=[{"kind": "User", "name": "bob"}, {"kind": "Group", "name": "x"}])
    shared = budget("s", scope="Shared", subjects=[{"kind": "Group", "name": "staff"}])
    got = applicable([by_user, by_group, by_ns, other, shared], ALICE)
    assert [a for _, a in got] == [
        Account("g", "User", "alice"),
        Account("n", "Namespace", "ml"),
        Account("s", "Shared", ""),
        Account("u", "User", "alice"),
    ]


def test_user_named_and_in_group_is_one_account() -> None:
    both = budget(subjects=[{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "vision"}])
    assert accounts_for(both, ALICE) == [Account("team-vision", "User", "alice")]


# --- status ----------------------------------------------------------------------------------


def test_status_per_member_shared_pool_and_projection() -> None:
    per = budget()
    usage = [
        UsageSlice("alice", "ml", "h100", 150, 600, "USD"),
        UsageSlice("bob", "ml", "h100", 30, 120, "USD"),
        UsageSlice("carol", "ml", "h100", 99, 0, "USD"),  # not in the group
    ]
    running = [h100(4), h100(2, "bob")]
    statuses = account_statuses(per, NOV, usage, running, GROUPS, NOW)
    alice = statuses[Account("team-vision", "User", "alice")]
    assert (alice.used, alice.remaining, alice.running_gpus) == (150, 50, 4)
    assert alice.projected_exhaustion == NOW + timedelta(hours=12.5)
    assert set(statuses) == {Account("team-vision", "User", n) for n in ("alice", "bob")}

    pool = budget(scope="Shared")
    (shared,) = account_statuses(pool, NOV, usage, running, GROUPS, NOW).values()
    assert (shared.used, shared.running_gpus, shared.burn_per_hour) == (180, 6, 6)


def test_projection_is_omitted_when_it_falls_after_the_period() -> None:
    statuses = account_statuses(
        budget(allowance={"gpuHours": 500}), NOV, [], [h100(1)], GROUPS, NOW
    )
    assert statuses[Account("team-vision", "User", "alice")].projected_exhaustion is None


def test_usage_in_classes_the_budget_does_not_pay_for_is_not_counted() -> None:
    b = budget(allowed_classes=["h100"])
    usage = [UsageSlice("alice", "ml", "a100", 50, 0, "USD")]
    assert status_of(b, 10).used == 10
    assert account_statuses(b, NOV, usage, [], GROUPS, NOW) == {}


def test_money_budget_counts_cost_and_burns_hourly_cost() -> None:
    b = budget(allowance={"amount": 1000, "currency": "USD"})
    st = status_of(b, 100, [h100(2)])
    assert (st.unit, st.used, st.used_gpu_hours, st.burn_per_hour) == ("USD", 400, 100, 8)


def test_budget_status_object_carries_friction_and_period() -> None:
    b = budget(subjects=[{"kind": "User", "name": "alice"}, {"kind": "Namespace", "name": "ml"}])
    friction = FrictionBook()
    alice = Account(b.name, "User", "alice")
    friction.refused(NOV.name, [alice])
    friction.refused(NOV.name, [alice])
    friction.exhausted(NOV.name, alice)
    friction.waited(NOV.name, [alice], 90)
    friction.refused("2026-10", [alice])  # another period: not shown
    statuses = account_statuses(b, NOV, [], [], GROUPS, NOW, friction)
    doc = budget_status(b, statuses, NOV).dump()
    assert doc["period"]["name"] == "2026-11"
    by_kind = {s["kind"]: s for s in doc["subjects"]}
    assert by_kind["User"]["refusals"] == 2
    assert by_kind["User"]["exhaustions"] == 1
    assert by_kind["User"]["gpuWaitSeconds"] == 90
    assert by_kind["Namespace"]["remainingGpuHours"] == 200


# --- admission -------------------------------------------------------------------------------


def test_refusal_message_names_person_budget_remaining_and_what_fits() -> None:
    b = budget()
    decision = gate.decide(request(4), [(b, status_of(b, 198.5))])
    assert not decision.allowed
    assert decision.reason == "InsufficientBudget"
    assert decision.message == (
        "alice has 1.5 of 200 GPU-hours left in 2026-11 on budget team-vision; "
        "4×H100 would use it in 22 minutes, under the budget's minRuntime of 1h; "  # noqa: RUF001
        "try gpus: 1 or ask the owners of team-vision"
    )


def test_the_hint_counts_what_the_owners_running_sandboxes_already_burn() -> None:
    b = budget()
    # 9 GPU-hours left: 4 more GPUs alone would last 2.25 h, but 6 already burn beside them.
    busy = gate.decide(request(4), [(b, status_of(b, 191, [h100(6)]))])
    assert busy.reason == "InsufficientBudget"
    assert busy.message == (
        "alice has 9 of 200 GPU-hours left in 2026-11 on budget team-vision; "
        "4×H100 beside the 6 GPUs already running would use it in 54 minutes, "  # noqa: RUF001
        "under the budget's minRuntime of 1h; try gpus: 3 or ask the owners of team-vision"
    )
    idle = gate.decide(request(4), [(b, status_of(b, 191))])
    assert idle.allowed, idle.message  # the same request with nothing running lasts 2.25 h
    tight = gate.decide(request(4), [(b, status_of(b, 192, [h100(6)]))])  # 8 h left / 10 per h
    assert "would use it in 48 minutes" in tight.message
    assert "try gpus: 2 or" in tight.message  # 8 / (6 + 2) = 1 h exactly


def test_min_runtime_is_the_budgets_own_and_0s_turns_the_check_off() -> None:
    short = budget(min_runtime="15m")
    ok = gate.decide(request(4), [(short, status_of(short, 198.5))])  # 22 minutes >= 15
    assert ok.allowed, ok.message
    strict = budget(min_runtime="2h")
    refused = gate.decide(request(1), [(strict, status_of(strict, 198.5))])  # 1.5 h < 2 h
    assert refused.reason == "InsufficientBudget"
    assert "under the budget's minRuntime of 2h" in refused.message
    assert "ask the owners of team-vision for a top-up" in refused.message  # not even 1 GPU
    off = budget(min_runtime="0s")
    assert gate.decide(request(8), [(off, status_of(off, 199.99))]).allowed
    assert not gate.decide(request(8), [(off, status_of(off, 200))]).allowed  # still exhausted
    assert budget().spec.min_runtime == "1h"


@pytest.mark.parametrize("bad", ["-1h", "abc", "1", "1d", "", " 1h"])
def test_a_min_runtime_that_is_no_duration_is_refused(bad: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"minRuntime|min_runtime"):
        budget(minRuntime=bad)


def test_admitted_inside_budget_and_tightest_budget_reported() -> None:
    loose, tight = budget("a"), budget("b", allowance={"gpuHours": 20})
    decision = gate.decide(request(2), [(loose, status_of(loose, 0)), (tight, status_of(tight, 0))])
    assert decision.allowed
    assert "on budget b; 2×H100 can run about 10 hours" in decision.message  # noqa: RUF001


def test_all_budgets_must_allow() -> None:
    loose, tight = budget("a"), budget("b", allowance={"gpuHours": 10})
    decision = gate.decide(
        request(1), [(loose, status_of(loose, 0)), (tight, status_of(tight, 10))]
    )
    assert not decision.allowed
    assert decision.reason == "BudgetExhausted"
    assert "alice has 0 of 10 GPU-hours left in 2026-11 on budget b" in decision.message
    assert "renews on 2026-12-01" in decision.message
    assert "budget a" not in decision.message


def test_concurrency_limit_suggests_what_fits() -> None:
    b = budget(max_concurrent_gpus=8)
    decision = gate.decide(request(4), [(b, status_of(b, 0, [h100(6)]))])
    assert decision.reason == "ConcurrencyLimit"
    assert (
        "alice holds 6 of the 8 GPUs budget team-vision allows at once (maxConcurrentGpus)"
        in decision.message
    )
    assert "4×H100 would make 10; try gpus: 2" in decision.message  # noqa: RUF001
    full = gate.decide(request(1), [(b, status_of(b, 0, [h100(8)]))])
    assert "suspend a running sandbox" in full.message


def test_class_not_allowed_lists_allowed_classes() -> None:
    b = budget(allowed_classes=["h100", "mig-1g"])
    decision = gate.decide(request(1, cls="a100"), [(b, status_of(b, 0))])
    assert decision.reason == "ClassNotAllowed"
    assert "does not pay for class a100 (allowed: h100, mig-1g)" in decision.message


def test_nothing_fits_asks_for_a_top_up_and_several_refusals_are_all_named() -> None:
    b = budget(max_concurrent_gpus=1)
    st = status_of(b, 199.9, [h100(1)])
    decision = gate.decide(request(1), [(b, st)])
    assert decision.reason == "ConcurrencyLimit"
    other = budget("x", allowance={"gpuHours": 1})
    two = gate.decide(request(1), [(other, status_of(other, 0.9)), (b, status_of(b, 0))])
    assert "ask the owners of x for a top-up" in two.message


def test_cpu_only_sandbox_needs_no_gpu_hours() -> None:
    b = budget()
    assert gate.decide(request(0), [(b, status_of(b, 200))]).allowed


def test_no_budget_default_deny_or_default_allowance() -> None:
    carol = Person("carol", frozenset(), "sandbox")
    denied = gate.decide(request(1, person=carol), [])
    assert (denied.allowed, denied.reason) == (False, "NoBudget")
    assert "no ComputeBudget covers carol (groups: none) in namespace sandbox" in denied.message
    policy = NoBudgetPolicy("DefaultAllowance", gpu_hours=8, max_concurrent_gpus=1)
    budgets = gate.with_default([], carol, policy, applicable=False)
    (default,) = budgets
    st = account_statuses(default, NOV, [], [], {}, NOW)[Account("default", "User", "carol")]
    assert gate.decide(request(1, person=carol), [(default, st)]).allowed
    assert not gate.decide(request(2, person=carol), [(default, st)]).allowed
    assert gate.with_default([], carol, NoBudgetPolicy(), applicable=False) == []


def test_checks_for_uses_each_budgets_own_period_and_includes_unused_members() -> None:
    monthly = budget("m")
    weekly = budget("w", period="Weekly", allowance={"gpuHours": 10})
    seen: list[str] = []

    def usage_in(period: Period) -> list[UsageSlice]:
        seen.append(period.name)
        return [UsageSlice("bob", "ml", "h100", 5, 0, "USD")]

    checks = gate.checks_for([monthly, weekly], ALICE, usage_in, [], GROUPS, NOW)
    assert sorted(seen) == ["2026-11", "2026-W47"]
    assert [(b.name, st.account.name, st.used) for b, st in checks] == [
        ("m", "alice", 0.0),
        ("w", "alice", 0.0),
    ]
    carol = Person("carol", frozenset(), "ml")
    policy = NoBudgetPolicy("DefaultAllowance", gpu_hours=3)
    (only,) = gate.checks_for([monthly], carol, usage_in, [], GROUPS, NOW, policy=policy)
    assert (only[0].name, only[1].allowance) == ("default", 3)


def test_shared_pool_message_names_the_pool() -> None:
    b = budget(scope="Shared")
    (st,) = account_statuses(
        b, NOV, [UsageSlice("bob", "ml", "h100", 200, 0, "USD")], [], GROUPS, NOW
    ).values()
    decision = gate.decide(request(1), [(b, st)])
    assert decision.message.startswith("the shared pool of team-vision has 0 of 200 GPU-hours")


# --- enforcement -----------------------------------------------------------------------------


def test_thresholds_warn_once_each_then_exhaustion_acts_once() -> None:
    b = budget(warn_at=[50, 80, 95])
    actions, seen = enforcement.check(b, status_of(b, 170), None)
    assert [a.threshold for a in actions if isinstance(a, enforcement.Warn)] == [50, 80]
    assert "alice has used 80% or more of 200 GPU-hours" in actions[1].message
    actions, seen = enforcement.check(b, status_of(b, 171, [h100(2)]), seen)
    assert actions == []
    actions, seen = enforcement.check(b, status_of(b, 192, [h100(2)]), seen)
    assert [type(a).__name__ for a in actions] == ["Warn"]
    assert "lasts 4 hours" in actions[0].message
    actions, seen = enforcement.check(b, status_of(b, 200.5), seen)
    assert [type(a).__name__ for a in actions] == ["Exhausted"]
    exhausted = actions[0]
    assert isinstance(exhausted, enforcement.Exhausted)
    assert exhausted.action == "Suspend"
    assert "running sandboxes are suspended" in exhausted.message
    assert enforcement.check(b, status_of(b, 210), seen)[0] == []


def test_top_up_lifts_and_rearms_thresholds() -> None:
    b = budget(warn_at=[80])
    _, seen = enforcement.check(b, status_of(b, 200), None)
    topped = budget(warn_at=[80], allowance={"gpuHours": 400})
    actions, seen = enforcement.check(topped, status_of(topped, 200), seen)
    assert [type(a).__name__ for a in actions] == ["Lifted"]
    lifted = actions[0]
    assert isinstance(lifted, enforcement.Lifted)
    assert lifted.reason == "TopUp"
    assert "200 GPU-hours left" in lifted.message
    actions, _ = enforcement.check(topped, status_of(topped, 330), seen)
    assert [type(a).__name__ for a in actions] == ["Warn"]


def test_new_period_lifts_and_resets_warnings() -> None:
    b = budget(warn_at=[80])
    _, seen = enforcement.check(b, status_of(b, 200), None)
    december = period_at("Monthly", datetime(2026, 12, 1, 1, tzinfo=UTC))
    alice = Account(b.name, "User", "alice")
    fresh = account_statuses(b, december, [], [], GROUPS, december.start, include=[alice])
    actions, seen = enforcement.check(b, fresh[alice], seen)
    assert [(type(a).__name__, getattr(a, "reason", "")) for a in actions] == [
        ("Lifted", "NewPeriod")
    ]
    assert seen == enforcement.Announced("2026-12")
    assert enforcement.Announced.from_json(seen.to_json()) == seen


def test_only_suspend_budgets_suspend_the_exhausted_accounts_sandboxes() -> None:
    suspend, deny = budget("s"), budget("d", on_exhausted="DenyNew")
    running = [h100(1), h100(2, "bob"), h100(1, "carol")]
    exhausted = [Account("s", "User", "alice"), Account("d", "User", "bob")]
    picked = enforcement.to_suspend([suspend, deny], exhausted, running, GROUPS)
    assert [(sb.owner, acc.budget) for sb, acc in picked] == [("alice", "s")]


# --- notifications ---------------------------------------------------------------------------


def test_slack_payload_is_plain_json_with_escaped_text() -> None:
    b = budget("a<b>&c", warn_at=[80])
    (warn,), _ = enforcement.check(b, status_of(b, 170), None)
    body = notify.budget_payload(warn)
    json.dumps(body)
    assert body["text"].startswith(":warning: Budget a&lt;b&gt;&amp;c at 80%")
    assert body["blocks"][0]["type"] == "header"
    assert "*user:* alice" in body["blocks"][2]["elements"][0]["text"]


def test_reclaim_payload_and_sandbox_budget_view() -> None:
    body = notify.reclaim_payload("ml", "nb", "alice", True, "Idle", "idle since 09:00 UTC")
    assert body["text"] == (
        ":warning: Sandbox ml/nb will be suspended (Idle): idle since 09:00 UTC"
    )
    b = budget()
    view = sandbox_budget(status_of(b, 50.25))
    assert (view.name, view.remaining_gpu_hours, view.period) == ("team-vision", 149.75, "2026-11")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 260), min_size=1, max_size=30))
def test_warnings_once_per_crossing_and_exhaustion_alternates_with_lift(
    usages: list[float],
) -> None:
    b = budget(warn_at=[50, 80, 95])  # allowance 200: thresholds at 100, 160, 190 GPU-hours
    seen = None
    below_since_warn = {t: True for t in (50, 80, 95)}
    previous = 0.0
    state = "available"
    for used in usages:
        actions, seen = enforcement.check(b, status_of(b, used), seen)
        warned = {a.threshold for a in actions if isinstance(a, enforcement.Warn)}
        for t in (50, 80, 95):
            if t in warned:
                assert below_since_warn[t], f"warned twice at {t}% without falling below it"
                below_since_warn[t] = False
            crossed = previous < t * 2 <= used < 200
            assert not crossed or t in warned, f"crossing {t}% was not warned"
            if used < t * 2:
                below_since_warn[t] = True
        for action in actions:
            if isinstance(action, enforcement.Exhausted):
                assert state == "available"
                state = "exhausted"
            elif isinstance(action, enforcement.Lifted):
                assert state == "exhausted"
                state = "available"
        assert (state == "exhausted") == (used >= 200)
        previous = used
