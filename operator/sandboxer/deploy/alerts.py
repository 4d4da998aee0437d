"""Alert rules shipped in the chart (a PrometheusRule), on the dashboard's own expressions.

Each alert names what broke and what to do in its annotations. `promtool check rules` and
`promtool test rules` run on them in tests/contract/test_alert_rules.py, and the playground's
real Prometheus loads them in tests/integration/test_prometheus_dashboard.py.
"""

from __future__ import annotations

from typing import Any

from sandboxer.deploy.dashboard import AGENT_REPORT_AGE, BUDGET_FORECAST, RECONCILE_ERROR_RATE

STALE_REPORT_SECONDS = 300  # ten report intervals of the default 30 s, and then some


def _alert(
    name: str, expr: str, for_: str, severity: str, summary: str, action: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": action},
    }


def rules() -> dict[str, Any]:
    """A Prometheus rule file (also the PrometheusRule's spec)."""
    return {
        "groups": [
            {
                "name": "sandboxer",
                "rules": [
                    _alert(
                        "SandboxerAgentReportStale",
                        f"{AGENT_REPORT_AGE} > {STALE_REPORT_SECONDS}",
                        "5m",
                        "warning",
                        "The metering agent on {{ $labels.node }} has not published a "
                        "GPUNodeReport for {{ $value | humanizeDuration }}.",
                        "Usage on this node is not metered, so budgets and idle reclaim do not "
                        "see it: check the agent pod's logs (NVML, kubelet socket, API access).",
                    ),
                    _alert(
                        "SandboxerReconcileErrors",
                        f"{RECONCILE_ERROR_RATE} > 0",
                        "15m",
                        "warning",
                        "The {{ $labels.controller }} controller keeps failing reconciles.",
                        "Sandboxes may not get or lose their children: read the operator's "
                        "error lines (their `object` field names the sandbox) and its Events.",
                    ),
                    _alert(
                        "SandboxerBudgetForecastOver",
                        f"{BUDGET_FORECAST} > 1",
                        "1h",
                        "info",
                        "Budget {{ $labels.budget }} ({{ $labels.subject }}) is on course to "
                        "use {{ $value | humanizePercentage }} of its allowance this period.",
                        "At the current burn rate sandboxes will be refused or suspended before "
                        "the period ends: top up the allowance or talk to its owners.",
                    ),
                ],
            }
        ]
    }
