from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from sandboxer.api.budget import ComputeBudgetSpec
from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import IdlePolicy
from sandboxer.api.types import (
    format_duration,
    get_condition,
    parse_duration,
    parse_quantity,
    set_condition,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("2h0m5s", 7205),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1 hour", "10", "-5m", "1d", "h"])
def test_parse_duration_refuses_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="Go-style units like '90s'"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45, "45s"), (5400, "1h30m"), (3600, "1h")]
)
def test_format_duration_round_trips(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("4", Decimal(4)), (2, Decimal(2)), ("64Gi", Decimal(64 * 2**30)),
     ("1k", Decimal(1000)), ("1e3", Decimal(1000)), ("1.5Ti", Decimal("1.5") * 2**40)],
)  # fmt: skip
def test_parse_quantity(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["64GB", "abc", "1.2.3", ""])
def test_parse_quantity_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="Kubernetes quantities like '500m'"):
        parse_quantity(text)


def test_sandbox_spec_accepts_int_quantities_and_reads_class_alias() -> None:
    spec = ExperimentSandboxSpec.model_validate(
        {"class": "h100", "gpus": 2, "resources": {"cpu": 4, "memory": "32Gi"}}
    )
    assert spec.class_ == "h100"
    assert spec.resources is not None and spec.resources.cpu == "4"
    assert spec.dump()["class"] == "h100"


def test_sandbox_spec_refuses_unknown_fields_and_bad_class() -> None:
    with pytest.raises(ValidationError, match="gpuz"):
        ExperimentSandboxSpec.model_validate({"class": "h100", "gpuz": 1})
    with pytest.raises(ValidationError, match="DNS-1123 label"):
        ExperimentSandboxSpec.model_validate({"class": "H100_X"})


def test_idle_policy_warning_must_come_before_reclaim() -> None:
    with pytest.raises(ValidationError, match=r"warnBefore \(1h\) must be shorter than idle.after"):
        IdlePolicy(after="30m", warn_before="1h")


def test_allowance_needs_exactly_one_unit() -> None:
    base = {"subjects": [{"kind": "User", "name": "alice"}]}
    with pytest.raises(ValidationError, match=r"exactly one of gpuHours or amount"):
        ComputeBudgetSpec.model_validate({**base, "allowance": {}})
    with pytest.raises(ValidationError, match=r"needs allowance\.currency"):
        ComputeBudgetSpec.model_validate({**base, "allowance": {"amount": 100}})
    ok = ComputeBudgetSpec.model_validate({**base, "allowance": {"gpuHours": 10}})
    assert ok.warn_at == [80, 95]


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=5)
    conds = set_condition([], "Ready", "False", "Provisioning", at=t0, generation=1)
    conds = set_condition(conds, "Ready", "False", "WaitingForPod", at=t1, generation=2)
    ready = get_condition(conds, "Ready")
    assert ready is not None
    assert ready.last_transition_time == t0
    assert (ready.reason, ready.observed_generation) == ("WaitingForPod", 2)
    conds = set_condition(conds, "Ready", "True", "PodReady", at=t1)
    assert get_condition(conds, "Ready").last_transition_time == t1  # type: ignore[union-attr]
    assert len(conds) == 1
