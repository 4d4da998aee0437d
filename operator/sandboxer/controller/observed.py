"""What the operator's handlers report to Prometheus: reconcile results and durations
(controller-runtime's metrics), time to notebook, and the sandbox and budget facts dashboards
join usage against.

`sandboxer_sandbox_info{namespace,pod,sandbox,owner,team,class}` is 1 per sandbox, like
kube-state-metrics' `kube_pod_labels`: the agents count usage per (namespace, pod), and
`* on (namespace, pod) group_left (owner, team)` attributes it to people and teams.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sandboxer.budgets.periods import period_at
from sandboxer.observability.metrics import OperatorMetrics

TEAM_LABEL = "sandboxer.io/team"  # the Namespace label the loop reads the team from
Handler = Callable[..., Awaitable[Any]]


def observed(controller: str, fn: Handler) -> Handler:
    """Wrap a kopf handler: one reconcile_total/time sample per call. kopf's TemporaryError is
    controller-runtime's RequeueAfter; PermanentError and anything else an error."""

    @functools.wraps(fn)
    async def handler(**kwargs: Any) -> Any:
        metrics: OperatorMetrics | None = kwargs["memo"].get("metrics")
        started, result = time.perf_counter(), "success"
        try:
            return await fn(**kwargs)
        except asyncio.CancelledError:
            result = ""  # stopping, not a reconcile outcome
            raise
        except kopf.TemporaryError:
            result = "requeue_after"
            raise
        except BaseException:
            result = "error"
            raise
        finally:
            if metrics is not None and result:
                metrics.observe_reconcile(controller, result, time.perf_counter() - started)

    return handler


def _ready(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def ready_transition(
    memo: kopf.Memo, meta: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any]
) -> None:
    """Observe time to notebook once per sandbox: its first Ready=True after creation."""
    metrics: OperatorMetrics | None = memo.get("metrics")
    if metrics is None or _ready(before) or not _ready(after) or before.get("suspendedReason"):
        return
    seen: set[str] = memo.setdefault("ready_seen", set())
    uid, created = str(meta.get("uid") or ""), meta.get("creationTimestamp")
    if not uid or uid in seen or not created:
        return
    seen.add(uid)
    start = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    metrics.time_to_ready_seconds.observe(max(0.0, (datetime.now(UTC) - start).total_seconds()))


def forget(memo: kopf.Memo, uid: str | None) -> None:
    memo.get("ready_seen", set()).discard(uid)


class SandboxCollector(Collector):
    """Read at scrape time from kopf's live indexes (nothing copied per sandbox)."""

    def __init__(self, indexes: Mapping[str, Any]) -> None:
        self.indexes = indexes

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "sandboxer_sandbox_info",
            "1 per sandbox: who owns it and which team pays (join usage on namespace, pod)",
            labels=["namespace", "pod", "sandbox", "owner", "team", "class"],
        )
        namespaces = self.indexes.get("index_namespace")
        for (namespace, name), entries in list(self.indexes["index_sandbox"].items()):
            for raw in entries:
                spec = raw.get("spec") or {}
                labels = _first(namespaces, namespace) if namespaces is not None else None
                team = (labels or {}).get(TEAM_LABEL) or namespace
                owner = str(spec.get("owner") or "")
                cls = str(spec.get("class") or "")
                info.add_metric([namespace, f"{name}-0", name, owner, team, cls], 1.0)
        yield info
        budgets = self.indexes.get("index_budget")
        if budgets is None:
            return
        end = GaugeMetricFamily(
            "sandboxer_budget_period_end_timestamp_seconds",
            "When the budget's current period ends (for burn forecasts)",
            labels=["budget"],
        )
        now = datetime.now(UTC)
        for name, specs in list(budgets.items()):
            for spec in specs:
                period = period_at(spec.get("period") or "Monthly", now)
                end.add_metric([str(name)], period.end.timestamp())
        yield end


def _first(index: Any, key: Any) -> Any:
    for value in index.get(key, ()):
        return value
    return None


async def start_collector(*, memo: kopf.Memo, **kwargs: Any) -> None:
    """Startup activity: kopf hands it the indexes; the collector keeps them (live views)."""
    metrics: OperatorMetrics | None = memo.get("metrics")
    if metrics is None or memo.get("sandbox_collector") is not None:
        return
    indexes = {k: v for k, v in kwargs.items() if k.startswith("index_")}
    memo["sandbox_collector"] = collector = SandboxCollector(indexes)
    metrics.registry.register(collector)
    for controller in CONTROLLERS:
        metrics.init_controller(controller)


CONTROLLERS = ("experimentsandbox", "experimentsandbox-status")


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(id="start-metrics", registry=registry)(start_collector)
