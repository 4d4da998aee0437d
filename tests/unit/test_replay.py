"""What-if replay: the recorded policy replays to what happened; longer windows reclaim less."""

from __future__ import annotations

import itertools
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxer.cli import main
from sandboxer.ledger import telemetry
from sandboxer.ledger.telemetry import GPUSample, TelemetryRow
from sandboxer.replay.simulate import by_sandbox, recorded, replay, sandbox_policy
from tests.unit.test_accounting_loop import CLASS, World
from tests.unit.test_telemetry import resume

POLICY = """\
apiVersion: sandboxer.io/v1alpha1
kind: SandboxClass
metadata: {name: h100}
spec:
  image: nb:1
  gpu: {model: H100}
  idle: {after: 10m, warnBefore: 2m, threshold: 5}
"""


def record_day(tmp: Path) -> World:
    """alice works, leaves it idle (reclaimed), comes back after 20 minutes (a premature
    reclaim), works again, leaves it idle once more and does not come back."""
    world = World(tmp)
    world.engine.run_pass(world.snapshot())
    for minutes, util in ((5, 70), (None, 0), (20, 0), (3, 80), (None, 0), (40, 0)):
        if util and world.suspended:
            resume(world)
        if minutes is None:
            while not world.suspended:
                world.step(30, util=util)
        else:
            for _ in range(minutes * 2):
                world.step(30, util=util)
    return world


@pytest.fixture
def day(tmp_path: Path) -> tuple[str, ...]:
    """`--ledger DIR --idle-policy FILE` of a recorded day and its class."""
    record_day(tmp_path / "ledger")
    policy = tmp_path / "h100.yaml"
    policy.write_text(POLICY)
    return ("--ledger", str(tmp_path / "ledger"), "--idle-policy", str(policy))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The real entry point (`sandboxer` is `sandboxer.cli:main`)."""
    argv, sys.argv = sys.argv, ["sandboxer", "replay", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err


def test_replaying_the_recorded_policy_reproduces_what_happened(
    day: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, *day, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    happened = doc["recorded"]
    assert happened["reclaims"] == doc["reclaims"] == 2
    assert happened["prematureReclaims"] == doc["prematureReclaims"] == 1
    assert doc["reclaimedGpuHours"] == pytest.approx(happened["reclaimedGpuHours"], abs=2 / 120)
    assert doc["missingHours"] == []
    pairs = zip(doc["interrupted"], happened["interrupted"], strict=True)
    for replayed, actual in pairs:
        assert (replayed["owner"], replayed["namespace"], replayed["name"]) == (
            actual["owner"], actual["namespace"], actual["name"],
        )  # fmt: skip
        gap = _at(actual["at"]) - _at(replayed["at"])
        assert timedelta(0) <= gap <= timedelta(seconds=30)  # the loop acts on the next pass
    assert doc["exhaustions"] is None and happened["exhaustions"] == 0


def test_sweep_prints_one_row_per_window(
    tmp_path: Path, day: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    args = day
    code, out, err = run_cli(capsys, *args, "--idle-after", "5m,10m,30m")
    assert code == 0, err
    rows = {line.split()[1]: line.split() for line in out.splitlines() if "idle.after" in line}
    assert list(rows) == ["5m", "10m", "30m"]
    # Only the last stretch (50 minutes, alice never came back) is idle for 30 minutes.
    assert (rows["30m"][3], rows["30m"][4]) == ("1", "0")
    assert (rows["5m"][3], rows["5m"][4]) == ("2", "1")  # back 25 minutes after the first
    assert "recorded" in out
    chart = tmp_path / "sweep.png"
    code, out, _ = run_cli(
        capsys, *args, "--idle-after", "5m,30m", "--format", "json", "--chart", str(chart)
    )
    sweep = json.loads(out)["sweep"]
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert [s["idleAfter"] for s in sweep] == ["5m", "30m"]
    assert sweep[0]["reclaimedGpuHours"] >= sweep[1]["reclaimedGpuHours"]


def test_replay_says_which_hours_are_missing_and_stops_at_the_data(
    day: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, *day,
        "--since", "2026-11-26T08:00:00Z", "--until", "2026-11-27T00:00:00Z", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["missingHours"] == [{"from": "2026-11-26T08:00:00Z", "to": "2026-11-26T10:00:00Z"}]
    # The last pass recorded (alice's day ends at 11:28), not the asked-for midnight.
    assert _at(doc["until"]) == datetime(2026, 11, 26, 11, 28, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("kind: ComputeBudget\n", (), "expected one SandboxClass manifest, found ComputeBudget"),
        (POLICY, ("--period", "2025-01"), "no telemetry for period 2025-01"),
        (POLICY.replace("h100}", "a100}"), (), "no telemetry of SandboxClass a100"),
        (POLICY, ("--idle-after", "soon"), "--idle-after 'soon'"),
        (POLICY.replace("10m,", "often,"), (), "spec.idle.after"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_or_period(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    record_day(tmp_path / "ledger")
    policy = tmp_path / "policy.yaml"
    policy.write_text(setup)
    code, _out, err = run_cli(
        capsys, "--ledger", str(tmp_path / "ledger"), "--idle-policy", str(policy), *args
    )
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    if "SandboxClass manifest" in message or "spec." in message:
        assert str(policy) in err


def test_corrupt_telemetry_names_the_file(
    tmp_path: Path, day: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    victim = sorted((tmp_path / "ledger" / "telemetry").rglob("*.parquet"))[0]
    victim.write_bytes(b"PAR1 garbage")
    code, _, err = run_cli(capsys, *day)
    assert code == 2
    assert victim.name in err and "not readable Parquet" in err
    assert len(err.strip().splitlines()) == 1


# Property: over any recorded sequence, a longer window never reclaims more.

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _history(steps: list[tuple[int, bool, bool]]) -> list[TelemetryRow]:
    """Reports every 30 s; each step is (reports, busy, then the owner suspends and resumes)."""
    rows: list[TelemetryRow] = []
    at, started, seq = START, START, 0
    base = {"sandbox_uid": "u", "namespace": "ns", "name": "nb", "owner": "o",
            "sandbox_class": "h100", "gpus": 1}  # fmt: skip
    for reports, busy, pause in steps:
        for _ in range(reports):
            at += timedelta(seconds=30)
            seq += 1
            gpu = GPUSample("GPU-0", 80.0 if busy else 0.0, 1, at if busy else None)
            rows.append(TelemetryRow(at=at, state="running", started_at=started,
                                     report=f"e/{seq}", gpu=(gpu,), **base))  # fmt: skip
        if pause:
            at += timedelta(minutes=1)
            rows.append(TelemetryRow(at=at, state="suspended", suspended_reason="User", **base))
            at += timedelta(minutes=7)
            started = at
    return rows


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 150), st.booleans(), st.booleans()), min_size=1, max_size=12
    ),
    windows=st.lists(st.integers(2, 120), min_size=2, max_size=4, unique=True),
)
def test_a_longer_window_never_reclaims_more(
    steps: list[tuple[int, bool, bool]], windows: list[int]
) -> None:
    rows = _history(steps)
    end = rows[-1].at
    histories = list(by_sandbox(rows).values())
    assert recorded(histories, end).reclaims == 0
    results = []
    for minutes in sorted(windows):
        cls = CLASS.model_copy(
            update={"idle": CLASS.idle.model_copy(update={"after": f"{minutes}m",
                                                          "warnBefore": "1m"})}
        )  # fmt: skip
        figures = replay(histories, lambda row, c=cls: sandbox_policy("h100", c, row), START, end)
        results.append(figures)
        assert all(START <= i.at <= end for i in figures.interrupted)  # never past the data
    for shorter, longer in itertools.pairwise(results):
        assert longer.reclaimed_gpu_hours <= shorter.reclaimed_gpu_hours + 1e-9
        assert longer.reclaims <= shorter.reclaims


def test_encoded_rows_feed_the_same_replay() -> None:
    rows = _history([(40, False, False), (5, True, True), (30, False, False)])
    again = telemetry.decode(telemetry.encode(rows), "f")
    policy = lambda row: sandbox_policy("h100", CLASS, row)  # noqa: E731
    a = replay(by_sandbox(rows).values(), policy, START, rows[-1].at)
    b = replay(by_sandbox(again).values(), policy, START, rows[-1].at)
    assert a == b and a.reclaims == 2


def test_max_lifetime_is_replayed_from_the_run_start() -> None:
    rows = _history([(120, True, False)])  # an hour of steady work, never idle
    cls = CLASS.model_copy(update={"max_lifetime": "30m"})
    figures = replay(
        by_sandbox(rows).values(), lambda row: sandbox_policy("h100", cls, row), START, rows[-1].at
    )
    ((hit,),) = [figures.interrupted]
    assert (hit.reason, hit.at) == ("Lifetime", START + timedelta(minutes=30))
    # Busy at the next report: the owner is back 30 s later, a premature reclaim.
    assert (figures.reclaims, figures.premature_reclaims) == (1, 1)
    assert figures.reclaimed_gpu_hours == pytest.approx(30 / 3600)


def test_a_sandbox_that_never_becomes_ready_is_not_idle_reclaimed() -> None:
    base = {"sandbox_uid": "u", "namespace": "ns", "name": "nb", "owner": "o",
            "sandbox_class": "h100", "gpus": 1}  # fmt: skip
    rows = [
        TelemetryRow(
            at=START + timedelta(seconds=30 * i),
            state="pending",
            report=f"e/{i}",
            gpu=(GPUSample("GPU-0", 0.0, 0, None),),
            **base,
        )
        for i in range(240)
    ]
    figures = replay(
        by_sandbox(rows).values(), lambda row: sandbox_policy("h100", CLASS, row), START,
        rows[-1].at,
    )  # fmt: skip
    assert figures.reclaims == 0
