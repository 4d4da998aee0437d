"""The Grafana dashboard shipped in the chart: what a platform lead and a finance partner ask.

Usage comes live from the agents' per-pod counters (`sandboxer_gpu_{allocated,busy}_seconds`),
attributed to people and teams by joining `sandboxer_sandbox_info` on (namespace, pod), the way
kube-state-metrics' `kube_pod_labels` is joined. These are device GPU-hours as metered; the
billing-weighted hours of closed ledger hours are `sandboxer_ledger_gpu_hours_total` and the
FOCUS export. Every query is plain PromQL without Grafana variables, so the same text runs in
Prometheus directly (tests/integration/test_prometheus_dashboard.py evaluates each one against a
real Prometheus scraping the playground).

Counters that appear with their first event (refusals, reclaims, waits) have no earlier sample
for increase() to start from; `_window` counts such a new series from zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandboxer.observability.metrics import PREFIX

# Agent (per GPU and pod; the scrape adds `node`).
ALLOCATED = f"{PREFIX}_gpu_allocated_seconds_total"
BUSY = f"{PREFIX}_gpu_busy_seconds_total"
GPU_UTILIZATION = f"{PREFIX}_gpu_utilization"
AGENT_LAST_REPORT = f"{PREFIX}_agent_last_report_timestamp_seconds"
# Operator.
SANDBOX_INFO = f"{PREFIX}_sandbox_info"
BUDGET_USED = f"{PREFIX}_budget_used_gpu_hours"
BUDGET_ALLOWANCE = f"{PREFIX}_budget_allowance_gpu_hours"
BUDGET_PERIOD_END = f"{PREFIX}_budget_period_end_timestamp_seconds"
RECLAIMED_GPU_HOURS = f"{PREFIX}_reclaimed_gpu_hours_total"
REFUSALS = f"{PREFIX}_admission_refusals_total"
GPU_WAIT = f"{PREFIX}_gpu_wait_seconds_total"
TIME_TO_READY = f"{PREFIX}_sandbox_time_to_ready_seconds"
RECONCILE_TOTAL = f"{PREFIX}_controller_runtime_reconcile_total"
RECONCILE_ERRORS = f"{PREFIX}_controller_runtime_reconcile_errors_total"
RECONCILE_TIME = f"{PREFIX}_controller_runtime_reconcile_time_seconds"

IDLE_PERCENT = 5  # a held GPU below this utilization counts as idle


def _attributed(expr: str, by: str) -> str:
    """Per-pod usage summed by owner or team through the sandbox info join."""
    info = f"max by (namespace, pod, {by}) ({SANDBOX_INFO})"
    return f"sum by ({by}) ({expr} * on (namespace, pod) group_left ({by}) {info})"


def _window(counter: str, window: str, by: str) -> str:
    """increase() over `window`, counting a series born inside the window from zero."""
    born = f"({counter} unless {counter} offset {window})"
    return f"sum by ({by}) ({born} or increase({counter}[{window}]))"


def _share(by: str) -> str:
    busy = _attributed(f"rate({BUSY}[5m])", by)
    held = _attributed(f"rate({ALLOCATED}[5m])", by)
    return f"{busy} / {held}"


def _quantile(q: float, histogram: str, window: str, by: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket[{window}])))"


_BURN_USED = f"max by (budget, subject) ({BUDGET_USED})"
_BURN_ALLOWANCE = f"on (budget) group_left () max by (budget) ({BUDGET_ALLOWANCE})"
_BURN_SLOPE = f"max by (budget, subject) (clamp_min(deriv({BUDGET_USED}[1h]), 0))"
_LEFT = f"on (budget) group_left () (max by (budget) ({BUDGET_PERIOD_END}) - time())"
# Shared with the alert rules (deploy/alerts.py).
BUDGET_FORECAST = f"({_BURN_USED} + {_BURN_SLOPE} * {_LEFT}) / {_BURN_ALLOWANCE}"
RECONCILE_ERROR_RATE = f"sum by (controller) (rate({RECONCILE_ERRORS}[5m]))"
AGENT_REPORT_AGE = f"time() - max by (node) ({AGENT_LAST_REPORT})"


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries | bargauge | stat
    unit: str
    queries: dict[str, str]  # legend -> PromQL
    description: str = ""


PANELS: tuple[Panel, ...] = (
    Panel(
        "GPUs held by team",
        "timeseries",
        "short",
        {"{{team}}": _attributed(f"rate({ALLOCATED}[5m])", "team")},
        "GPUs allocated to sandboxes, by the paying team: GPU-hours per hour.",
    ),
    Panel(
        "Busy share by team",
        "timeseries",
        "percentunit",
        {"{{team}}": _share("team")},
        "Utilization-weighted over allocated GPU time: what the held GPUs actually did.",
    ),
    Panel(
        "GPU-hours by team (24h)",
        "bargauge",
        "short",
        {"{{team}}": f"{_attributed(f'increase({ALLOCATED}[24h])', 'team')} / 3600"},
    ),
    Panel(
        "Top spenders: GPU-hours by person (24h)",
        "bargauge",
        "short",
        {"{{owner}}": f"topk(10, {_attributed(f'increase({ALLOCATED}[24h])', 'owner')} / 3600)"},
    ),
    Panel(
        "Busy share by person",
        "timeseries",
        "percentunit",
        {"{{owner}}": _share("owner")},
    ),
    Panel(
        "Budget burn",
        "bargauge",
        "percentunit",
        {"{{budget}} {{subject}}": f"{_BURN_USED} / {_BURN_ALLOWANCE}"},
        "Share of the period's allowance used, per budget and subject (person or shared).",
    ),
    Panel(
        "Budget forecast at period end",
        "bargauge",
        "percentunit",
        {"{{budget}} {{subject}}": BUDGET_FORECAST},
        "Used plus the last hour's burn rate carried to the end of the period.",
    ),
    Panel(
        "Reclaimed GPU-hours by reason (7d)",
        "bargauge",
        "short",
        {"{{reason}}": _window(RECLAIMED_GPU_HOURS, "7d", "reason")},
        "Idle and lifetime reclaims: GPU-hours given back to the pool.",
    ),
    Panel(
        "Idle GPUs right now",
        "stat",
        "short",
        {
            "idle": (f'count(max by (UUID) ({GPU_UTILIZATION}{{pod!=""}}) < {IDLE_PERCENT})'),
            "held": f'count(max by (UUID) ({GPU_UTILIZATION}{{pod!=""}}))',
        },
        f"GPUs held by a sandbox and under {IDLE_PERCENT}% utilization, of all held GPUs.",
    ),
    Panel(
        "Budget refusals by person (24h)",
        "bargauge",
        "short",
        {"{{owner}} {{reason}}": _window(REFUSALS, "24h", "owner, reason")},
        "Friction: sandboxes refused at admission for budget reasons.",
    ),
    Panel(
        "Minutes waiting for GPUs by person (24h)",
        "bargauge",
        "short",
        {"{{owner}}": f"{_window(GPU_WAIT, '24h', 'owner')} / 60"},
        "Friction: time sandboxes stayed unscheduled for lack of free GPUs.",
    ),
    Panel(
        "Time to notebook",
        "timeseries",
        "s",
        {
            "p50": _quantile(0.5, TIME_TO_READY, "1h"),
            "p95": _quantile(0.95, TIME_TO_READY, "1h"),
        },
        "From a sandbox's creation to its first Ready.",
    ),
    Panel(
        "Reconciles by result",
        "timeseries",
        "reqps",
        {
            "{{controller}} {{result}}": (
                f"sum by (controller, result) (rate({RECONCILE_TOTAL}[5m]))"
            ),
            "{{controller}} errors": RECONCILE_ERROR_RATE,
        },
    ),
    Panel(
        "Reconcile latency",
        "timeseries",
        "s",
        {
            "{{controller}} p50": _quantile(0.5, RECONCILE_TIME, "5m", "controller"),
            "{{controller}} p99": _quantile(0.99, RECONCILE_TIME, "5m", "controller"),
        },
    ),
    Panel(
        "Agent report age by node",
        "timeseries",
        "s",
        {"{{node}}": AGENT_REPORT_AGE},
        "Seconds since each node's agent last published its GPUNodeReport.",
    ),
)

_DS = {"type": "prometheus", "uid": "${datasource}"}


def _panel(pid: int, panel: Panel) -> dict[str, Any]:
    width = 8
    return {
        "id": pid,
        "title": panel.title,
        "description": panel.description,
        "type": panel.kind,
        "datasource": _DS,
        "gridPos": {"h": 8, "w": width, "x": (pid - 1) % 3 * width, "y": (pid - 1) // 3 * 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": _DS}
            for i, (legend, expr) in enumerate(panel.queries.items())
        ],
    }


def queries() -> list[tuple[str, str, str]]:
    """(panel title, legend, PromQL) for every query the dashboard runs."""
    return [(p.title, legend, expr) for p in PANELS for legend, expr in p.queries.items()]


def dashboard() -> dict[str, Any]:
    """The dashboard model (Grafana JSON, schemaVersion 39)."""
    return {
        "title": "Sandboxer: GPU sandboxes",
        "uid": "sandboxer-overview",
        "schemaVersion": 39,
        "tags": ["sandboxer", "gpu", "finops"],
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data"}
            ]
        },
        "panels": [_panel(i, panel) for i, panel in enumerate(PANELS, start=1)],
    }
