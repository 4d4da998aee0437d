"""Scenario registry and runner for `make bench` (see benchmarks/README.md)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Target:
    metric: str  # key in the scenario's metrics (at the largest size)
    op: str  # "<=" or ">="
    value: float
    text: str  # the target as DESIGN.md states it

    def met(self, measured: float) -> bool:
        return measured <= self.value if self.op == "<=" else measured >= self.value


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    sizes: tuple[int, int, int]  # 1x, 4x, 16x
    targets: tuple[Target, ...] = ()
    # Headline figures without a DESIGN.md target: (metric, label), shown as "reported".
    figures: tuple[tuple[str, str], ...] = ()
    extra_args: tuple[str, ...] = ()
    timeout: float = 300.0
    growth_unit: str = "item"
    notes: str = ""
    derive: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, compare=False)


@dataclass
class Run:
    size: int
    metrics: dict[str, Any]
    unit_cost: float | None
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    error: str | None = None


def run_once(scenario: Scenario, size: int) -> Run:
    """Run one size in its own process; wait4 gives that process's own CPU and peak RSS."""
    cmd = [sys.executable, str(HERE / scenario.script), "--size", str(size), *scenario.extra_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = start + scenario.timeout
        status, usage = 0, None
        while usage is None:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                usage = ru
            elif time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                return Run(
                    size,
                    {},
                    None,
                    scenario.timeout,
                    0,
                    0,
                    f"timed out after {scenario.timeout:.0f}s",
                )
            else:
                time.sleep(0.05)  # polling a child process, not waiting on test state
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu = usage.ru_utime + usage.ru_stime
    rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    if proc.returncode != 0:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return Run(
            size, {}, None, wall, cpu, rss_mb, f"exit {proc.returncode}: " + " | ".join(tail)
        )
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return Run(size, {}, None, wall, cpu, rss_mb, "printed no JSON result")
    data = json.loads(lines[-1])
    metrics = data.get("metrics", {})
    if scenario.derive:
        metrics.update(scenario.derive(metrics))
    return Run(size, metrics, data.get("unit_cost"), wall, cpu, rss_mb)


def growth_verdict(runs: list[Run]) -> tuple[str, list[float]]:
    """Cost per item must not grow faster than log(size): compare 16x against 1x."""
    costs = [r.unit_cost for r in runs if r.unit_cost is not None and r.error is None]
    if len(costs) < 2 or costs[0] <= 0:
        return "n/a", [float(c) for c in costs]
    ratio = costs[-1] / costs[0]
    allowed = max(1.0, math.log(runs[-1].size) / math.log(max(runs[0].size, 2))) * 1.25
    return ("ok" if ratio <= allowed else f"superlinear (x{ratio:.2f} > x{allowed:.2f})"), [
        float(c) for c in costs
    ]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def run_all(scenarios: list[Scenario], only: set[str] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "started": time.time(), "scenarios": []}
    for scenario in scenarios:
        if only and scenario.name not in only:
            continue
        if not (HERE / scenario.script).exists():
            report["scenarios"].append({"name": scenario.name, "skipped": "script missing"})
            continue
        runs = []
        for size in scenario.sizes:
            print(f"[bench] {scenario.name} size={size} ...", flush=True)
            runs.append(run_once(scenario, size))
            if runs[-1].error:
                print(f"[bench]   error: {runs[-1].error}", flush=True)
                break
        final = runs[-1]
        targets = []
        for t in scenario.targets:
            value = final.metrics.get(t.metric)
            if t.metric == "max_rss_mb" and value is None:
                value = final.max_rss_mb
            status = "missed" if value is None or not t.met(float(value)) else "met"
            targets.append({"target": t.text, "metric": t.metric, "value": value, "status": status})
        for metric, label in scenario.figures:
            value = final.metrics.get(metric)
            targets.append(
                {"target": label, "metric": metric, "value": value, "status": "reported"}
            )
        verdict, costs = growth_verdict(runs)
        report["scenarios"].append(
            {
                "name": scenario.name,
                "notes": scenario.notes,
                "runs": [r.__dict__ for r in runs],
                "targets": targets,
                "growth": {"unit": scenario.growth_unit, "unit_costs": costs, "verdict": verdict},
            }
        )
    report["finished"] = time.time()
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        "# Benchmark results",
        "",
        f"Machine: {m['cpus']} CPUs, {m['processor']}, Python {m['python']}, {m['platform']}.",
        f"Total wall time: {report['finished'] - report['started']:.0f} s.",
        "",
        "| scenario | target | measured | status |",
        "|---|---|---|---|",
    ]
    for s in report["scenarios"]:
        if "skipped" in s:
            out.append(f"| {s['name']} | — | — | skipped ({s['skipped']}) |")
            continue
        if s["runs"][-1].get("error"):
            out.append(f"| {s['name']} | — | — | error: {s['runs'][-1]['error']} |")
        for t in s["targets"]:
            out.append(f"| {s['name']} | {t['target']} | {_fmt(t['value'])} | {t['status']} |")
    out += [
        "",
        "## Growth (cost per item at 1x, 4x, 16x)",
        "",
        "| scenario | sizes | unit cost | verdict |",
        "|---|---|---|---|",
    ]
    for s in report["scenarios"]:
        if "skipped" in s:
            continue
        sizes = ", ".join(str(r["size"]) for r in s["runs"])
        costs = ", ".join(_fmt(c) for c in s["growth"]["unit_costs"])
        growth = s["growth"]
        out.append(f"| {s['name']} | {sizes} | {costs} ({growth['unit']}) | {growth['verdict']} |")
    missed = [
        f"- {s['name']}: {t['target']} (measured {_fmt(t['value'])})"
        for s in report["scenarios"]
        if "skipped" not in s
        for t in s["targets"]
        if t["status"] == "missed"
    ]
    missed += [
        f"- {s['name']}: growth of {s['growth']['unit']}: {s['growth']['verdict']}"
        for s in report["scenarios"]
        if "skipped" not in s and s["growth"]["verdict"].startswith("superlinear")
    ]
    out += ["", "## Missed targets", "", *(missed or ["None."])]
    out += ["", "## All figures", ""]
    for s in report["scenarios"]:
        if "skipped" in s:
            continue
        out.append(f"### {s['name']}")
        if s["notes"]:
            out.append(s["notes"])
        out.append("")
        for r in s["runs"]:
            figures = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(r["metrics"].items()))
            out.append(
                f"- size {r['size']}: wall {r['wall_s']:.1f} s, cpu {r['cpu_s']:.1f} s, "
                f"peak RSS {r['max_rss_mb']:.0f} MB; {figures}"
            )
        out.append("")
    return "\n".join(out) + "\n"


def write(report: dict[str, Any]) -> tuple[Path, Path]:
    RESULTS.mkdir(exist_ok=True)
    js = RESULTS / "latest.json"
    md = RESULTS / "latest.md"
    js.write_text(json.dumps(report, indent=2, default=str))
    md.write_text(markdown(report))
    return js, md
