"""Prometheus metrics mirroring controller-runtime's names under a `sandboxer_` prefix.

Same names, labels and histogram buckets as controller-runtime, so existing dashboards and
alerts port over by changing the prefix. One registry per process (not the global default), so
tests can create fresh ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# controller-runtime pkg/internal/controller/metrics: reconcile_time_seconds buckets.
RECONCILE_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50,
    60,
)  # fmt: skip
# Time to notebook: image pull and Jupyter start, seconds to tens of minutes.
TIME_TO_READY_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600)
RESULTS = ("success", "error", "requeue", "requeue_after")
PREFIX = "sandboxer"


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.reconcile_total = Counter(
            f"{PREFIX}_controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors_total = Counter(
            f"{PREFIX}_controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_time_seconds = Histogram(
            f"{PREFIX}_controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.workqueue_depth = Gauge(
            f"{PREFIX}_workqueue_depth", "Current depth of workqueue", ["name"], registry=r
        )
        self.rest_client_requests_total = Counter(
            f"{PREFIX}_rest_client_requests_total",
            "Number of HTTP requests, partitioned by status code and method",
            ["code", "method"],
            registry=r,
        )
        self.leader_election_master_status = Gauge(
            f"{PREFIX}_leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
            "backup, 1 indicates master",
            ["name"],
            registry=r,
        )

        self.time_to_ready_seconds = Histogram(
            f"{PREFIX}_sandbox_time_to_ready_seconds",
            "Seconds from a sandbox's creation to its first Ready=True (time to notebook)",
            buckets=TIME_TO_READY_BUCKETS,
            registry=r,
        )

    def init_controller(self, controller: str) -> None:
        """As controller-runtime does at start: every result series at 0, so rates are 0, not
        missing, until something happens."""
        for result in RESULTS:
            self.reconcile_total.labels(controller=controller, result=result)
        self.reconcile_errors_total.labels(controller=controller)

    def observe_reconcile(self, controller: str, result: str, seconds: float) -> None:
        """Record one reconciliation; result is success|error|requeue|requeue_after."""
        self.reconcile_total.labels(controller=controller, result=result).inc()
        if result == "error":
            self.reconcile_errors_total.labels(controller=controller).inc()
        self.reconcile_time_seconds.labels(controller=controller).observe(seconds)


@dataclass
class LoopMetrics:
    """The accounting/budget/idle loop's figures (names the Grafana dashboard queries)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ledger_gpu_hours_total = Counter(
            f"{PREFIX}_ledger_gpu_hours_total",
            "Billing-weighted GPU-hours written to the ledger (closed hours)",
            ["team"],
            registry=r,
        )
        self.ledger_busy_gpu_hours_total = Counter(
            f"{PREFIX}_ledger_busy_gpu_hours_total",
            "Utilization-weighted GPU-hours written to the ledger (closed hours)",
            ["team"],
            registry=r,
        )
        self.reclaimed_gpu_hours_total = Counter(
            f"{PREFIX}_reclaimed_gpu_hours_total",
            "GPU-hours given back by idle or lifetime reclaim, projected to the end of the "
            "working day (docs/idle-reclaim.md)",
            ["team", "reason"],
            registry=r,
        )
        self.budget_allowance_gpu_hours = Gauge(
            f"{PREFIX}_budget_allowance_gpu_hours",
            "Allowance per budget and period, in GPU-hours",
            ["budget"],
            registry=r,
        )
        self.budget_used_gpu_hours = Gauge(
            f"{PREFIX}_budget_used_gpu_hours",
            "GPU-hours used this period per budget and subject",
            ["budget", "subject"],
            registry=r,
        )
        self.admission_refusals_total = Counter(
            f"{PREFIX}_admission_refusals_total",
            "Sandboxes refused at admission for budget reasons, per owner and reason",
            ["owner", "reason"],
            registry=r,
        )
        self.budget_exhaustions_total = Counter(
            f"{PREFIX}_budget_exhaustions_total",
            "Budget accounts that ran out, per budget and subject",
            ["budget", "subject"],
            registry=r,
        )
        self.gpu_wait_seconds_total = Counter(
            f"{PREFIX}_gpu_wait_seconds_total",
            "Seconds sandboxes waited for free GPUs (Scheduled=False, InsufficientGPU), per owner",
            ["owner"],
            registry=r,
        )
        self.pass_seconds = Histogram(
            f"{PREFIX}_loop_pass_seconds",
            "Duration of one pass of the accounting loop",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
