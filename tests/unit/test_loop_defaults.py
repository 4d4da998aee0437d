"""The loop's defaults live in loop/settings.py; every other layer must agree with them."""

from __future__ import annotations

import typer.main

from sandboxer.cli import app
from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.loop_runner import loop_settings
from sandboxer.loop.settings import LoopSettings


def test_operator_config_defaults_are_the_loop_settings_defaults() -> None:
    assert loop_settings(OperatorConfig(no_budget="deny")) == LoopSettings()


def test_operator_command_defaults_are_the_loop_settings_defaults() -> None:
    command = typer.main.get_command(app)
    operator = command.commands["operator"]  # type: ignore[attr-defined]
    defaults = {p.name: p.default for p in operator.params}
    loop = LoopSettings()
    assert defaults["loop_interval"] is None  # unset: LoopSettings().interval, or the playground's
    assert "min_runtime" not in defaults  # a ComputeBudget field (spec.minRuntime) now
    assert defaults["no_budget"] == "deny"
    assert loop.no_budget is not None and loop.no_budget.action == "Deny"
