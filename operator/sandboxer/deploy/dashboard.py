"""The Grafana dashboard shipped in the chart, and the metric names its panels query.

The operator and agent must export the metrics named in `DASHBOARD_METRICS` (a test can check
that against their registries); the panels are plain PromQL so the dashboard also works for
anyone who scrapes the pods without the Prometheus Operator.
"""

from __future__ import annotations

from typing import Any

from sandboxer.observability.metrics import PREFIX

# Counters of the ledger (operator), by team/owner/class; GPU-hours are weighted by class.
GPU_HOURS = f"{PREFIX}_ledger_gpu_hours_total"
BUSY_GPU_HOURS = f"{PREFIX}_ledger_busy_gpu_hours_total"
# Gauge per GPU from the agent (0-100, like dcgm-exporter's DCGM_FI_DEV_GPU_UTIL).
GPU_UTILIZATION = f"{PREFIX}_gpu_utilization"
# Counter of GPU-hours given back to the pool by suspensions, by team and reason.
RECLAIMED_GPU_HOURS = f"{PREFIX}_reclaimed_gpu_hours_total"
# Gauges per budget (and subject for PerSubject budgets).
BUDGET_USED = f"{PREFIX}_budget_used_gpu_hours"
BUDGET_ALLOWANCE = f"{PREFIX}_budget_allowance_gpu_hours"
# Counter of budget refusals at admission, by reason (NoBudget, Exhausted, ...) and owner.
REFUSALS = f"{PREFIX}_admission_refusals_total"

DASHBOARD_METRICS: tuple[str, ...] = (
    GPU_HOURS,
    BUSY_GPU_HOURS,
    GPU_UTILIZATION,
    RECLAIMED_GPU_HOURS,
    BUDGET_USED,
    BUDGET_ALLOWANCE,
    REFUSALS,
)

_DS = {"type": "prometheus", "uid": "${datasource}"}


def _panel(
    pid: int, title: str, kind: str, exprs: dict[str, str], unit: str, x: int, y: int
) -> dict[str, Any]:
    return {
        "id": pid,
        "title": title,
        "type": kind,
        "datasource": _DS,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": _DS}
            for i, (legend, expr) in enumerate(exprs.items())
        ],
    }


def dashboard() -> dict[str, Any]:
    """The dashboard model (Grafana JSON, schemaVersion 39)."""
    panels = [
        _panel(
            1,
            "GPU-hours per team",
            "timeseries",
            {"{{team}}": f"sum by (team) (increase({GPU_HOURS}[1h]))"},
            "short",
            0,
            0,
        ),
        _panel(
            2,
            "GPU utilization (busy / allocated GPU-hours)",
            "timeseries",
            {
                "{{team}}": f"sum by (team) (increase({BUSY_GPU_HOURS}[1h])) / "
                f"sum by (team) (increase({GPU_HOURS}[1h]))",
                "all GPUs": f"avg({GPU_UTILIZATION}) / 100",
            },
            "percentunit",
            12,
            0,
        ),
        _panel(
            3,
            "Reclaimed GPU-hours",
            "timeseries",
            {"{{team}} {{reason}}": f"sum by (team, reason) (increase({RECLAIMED_GPU_HOURS}[1h]))"},
            "short",
            0,
            8,
        ),
        _panel(
            4,
            "Budget burn",
            "bargauge",
            {"{{budget}}": f"max by (budget) ({BUDGET_USED} / {BUDGET_ALLOWANCE})"},
            "percentunit",
            12,
            8,
        ),
        _panel(
            5,
            "Admission refusals",
            "timeseries",
            {"{{reason}}": f"sum by (reason) (increase({REFUSALS}[1h]))"},
            "short",
            0,
            16,
        ),
    ]
    return {
        "title": "Sandboxer: GPU sandboxes",
        "uid": "sandboxer-overview",
        "schemaVersion": 39,
        "tags": ["sandboxer", "gpu", "finops"],
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "5m",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data"}
            ]
        },
        "panels": panels,
    }
