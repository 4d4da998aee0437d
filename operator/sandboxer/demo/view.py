"""What the demo shows: a live table on a terminal, plain progress lines elsewhere (CI, pipes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sandboxer import API_VERSION

UTILIZATION = "sim.sandboxer.io/gpu-utilization"


def _ago(stamp: str | None) -> str:
    if not stamp:
        return "-"
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return f"{(datetime.now(UTC) - then).total_seconds():.0f}s"


def table(sandboxes: list[dict[str, Any]]) -> Table:
    t = Table(title="kubectl get esb (live)", expand=False)
    for column in ("SANDBOX", "OWNER", "PHASE", "GPUS", "UTIL", "IDLE", "GPU-H", "BUDGET LEFT",
                   "REASON"):  # fmt: skip
        t.add_column(column)
    for sb in sorted(sandboxes, key=lambda o: o["metadata"]["name"]):
        spec, status = sb.get("spec", {}), sb.get("status", {})
        usage = status.get("usage") or {}
        budget = status.get("budget") or {}
        left = budget.get("remainingGpuHours")
        t.add_row(
            sb["metadata"]["name"],
            spec.get("owner", "-"),
            status.get("phase", "-"),
            str(spec.get("gpus", "-")),
            f"{sb['metadata'].get('annotations', {}).get(UTILIZATION, '0')}%",
            _ago(status.get("idleSince")),
            f"{usage.get('gpuHours', 0):.4f}",
            "-" if left is None else f"{left:.4f} ({budget.get('name')})",
            status.get("suspendedReason") or "",
        )
    return t


class Board:
    def __init__(self, *, live: bool, echo: Callable[[str], None] = print) -> None:
        self.live = live
        self.echo = echo
        self.cluster: Any = None
        self._live: Live | None = None
        self._console = Console()
        self._shown = 0.0

    def attach(self, cluster: Any) -> None:
        self.cluster = cluster

    def _sandboxes(self) -> list[dict[str, Any]]:
        return list(self.cluster.list(API_VERSION, "ExperimentSandbox")) if self.cluster else []

    def __enter__(self) -> Board:
        if self.live:
            self._live = Live(table([]), console=self._console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.update(table(self._sandboxes()))
            self._live.__exit__(et, e, tb)
            self._live = None

    def refresh(self) -> None:
        if self._live is not None and time.monotonic() - self._shown > 0.25:
            self._shown = time.monotonic()
            self._live.update(table(self._sandboxes()))

    def say(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)
        else:
            self.echo(text)
