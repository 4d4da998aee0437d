"""The chart's alert rules: promtool accepts them, and each fires exactly where it should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandboxer.deploy.alerts import rules
from tests.contract.helm_chart import CHART, find, objects, production_text

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool (Debian's prometheus package) is not installed; `make test` installs it",
)
RULES = CHART / "files" / "alerts.yaml"


def promtool(*args: str) -> str:
    assert PROMTOOL is not None
    proc = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS: 3 rules found" in promtool("check", "rules", str(RULES))


def _alert(name: str, at: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
    description = next(
        r["annotations"]["description"] for r in rules()["groups"][0]["rules"] if r["alert"] == name
    )
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {
                "exp_labels": labels,
                "exp_annotations": {"summary": summary, "description": description},
            }
        ],
    }


@needs_promtool
def test_each_alert_fires_for_the_broken_series_only(tmp_path: Path) -> None:
    errors = "sandboxer_controller_runtime_reconcile_errors_total"
    series = {
        # One agent reports every minute (the value is the time), one stopped at 0.
        'sandboxer_agent_last_report_timestamp_seconds{node="fresh"}': "0+60x40",
        'sandboxer_agent_last_report_timestamp_seconds{node="stuck"}': "0x40",
        errors + '{controller="experimentsandbox"}': "0+1x40",
        errors + '{controller="experimentsandbox-status"}': "0x40",
        # alice burns a GPU-hour a minute against 1000; bob nothing; the period ends at 100000 s.
        'sandboxer_budget_used_gpu_hours{budget="b",subject="alice"}': "0+1x120",
        'sandboxer_budget_used_gpu_hours{budget="b",subject="bob"}': "0x120",
        'sandboxer_budget_allowance_gpu_hours{budget="b"}': "1000x120",
        'sandboxer_budget_period_end_timestamp_seconds{budget="b"}': "100000x120",
    }
    quiet = [
        {"eval_time": "4m", "alertname": "SandboxerAgentReportStale", "exp_alerts": []},
        {"eval_time": "10m", "alertname": "SandboxerReconcileErrors", "exp_alerts": []},
        {"eval_time": "30m", "alertname": "SandboxerBudgetForecastOver", "exp_alerts": []},
    ]
    firing = [
        _alert("SandboxerAgentReportStale", "20m", {"severity": "warning", "node": "stuck"},
               "The metering agent on stuck has not published a GPUNodeReport for 20m 0s."),
        _alert("SandboxerReconcileErrors", "30m",
               {"severity": "warning", "controller": "experimentsandbox"},
               "The experimentsandbox controller keeps failing reconciles."),
        # (100 + 1/60 GPU-h/s * 94000 s) / 1000
        _alert("SandboxerBudgetForecastOver", "100m",
               {"severity": "info", "budget": "b", "subject": "alice"},
               "Budget b (alice) is on course to use 166.7% of its allowance this period."),
    ]  # fmt: skip
    shutil.copy(RULES, tmp_path / "alerts.yaml")
    test = {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": quiet + firing,
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    assert "SUCCESS" in promtool("test", "rules", str(tmp_path / "test.yaml"))


def test_the_chart_ships_the_rules_with_the_prometheus_operator_only() -> None:
    rule = find(objects(production_text()), "PrometheusRule")
    assert rule["spec"] == rules()
