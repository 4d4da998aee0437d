"""Handlers wrapped by controller/observed.py count results as controller-runtime does."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from sandboxer.controller.observed import observed, ready_transition
from sandboxer.observability.metrics import OperatorMetrics


def value(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


async def test_results_errors_and_durations_per_controller() -> None:
    metrics = OperatorMetrics()
    metrics.init_controller("c")
    memo = kopf.Memo(metrics=metrics)
    assert (
        metrics.registry.get_sample_value(
            "sandboxer_controller_runtime_reconcile_errors_total", {"controller": "c"}
        )
        == 0
    )  # initialised, as controller-runtime does

    outcomes: list[BaseException | None] = [
        None, kopf.TemporaryError("wait", delay=1), kopf.PermanentError("no"), ValueError("bug"),
    ]  # fmt: skip

    async def handler(**_: Any) -> str:
        raised = outcomes.pop(0)
        if raised is not None:
            raise raised
        return "done"

    wrapped = observed("c", handler)
    assert await wrapped(memo=memo) == "done"
    for expected in (kopf.TemporaryError, kopf.PermanentError, ValueError):
        with pytest.raises(expected):
            await wrapped(memo=memo)
    total = "sandboxer_controller_runtime_reconcile_total"
    assert value(metrics, total, controller="c", result="success") == 1
    assert value(metrics, total, controller="c", result="requeue_after") == 1
    assert value(metrics, total, controller="c", result="error") == 2
    errors = "sandboxer_controller_runtime_reconcile_errors_total"
    assert value(metrics, errors, controller="c") == 2
    count = "sandboxer_controller_runtime_reconcile_time_seconds_count"
    assert value(metrics, count, controller="c") == 4


async def test_cancellation_is_not_a_reconcile_result() -> None:
    metrics = OperatorMetrics()

    async def handler(**_: Any) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await observed("c", handler)(memo=kopf.Memo(metrics=metrics))
    assert (
        value(metrics, "sandboxer_controller_runtime_reconcile_time_seconds_count", controller="c")
        == 0
    )


def test_time_to_notebook_is_observed_once_per_sandbox() -> None:
    metrics = OperatorMetrics()
    memo = kopf.Memo(metrics=metrics)
    meta = {"uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    waiting = {"conditions": [{"type": "Ready", "status": "False"}]}
    ready_transition(memo, meta, waiting, waiting)
    ready_transition(memo, meta, waiting, ready)
    ready_transition(memo, meta, waiting, ready)  # the other handler saw the same transition
    ready_transition(memo, meta, {**waiting, "suspendedReason": "Idle"}, ready)  # a resume
    count = metrics.registry.get_sample_value("sandboxer_sandbox_time_to_ready_seconds_count")
    assert count == 1
