"""The benchmark harness's pure parts, and one real run of a trivial scenario script."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    """Import a module from benchmarks/ (a scripts folder, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


harness = _load("harness")
bench_result = _load("bench_result")


def _run(size: int, unit_cost: float | None, error: str | None = None) -> Any:
    return harness.Run(size, {}, unit_cost, 1.0, 1.0, 10.0, error)


def test_flat_unit_cost_is_ok() -> None:
    verdict, costs = harness.growth_verdict([_run(10, 2.0), _run(40, 2.1), _run(160, 2.2)])
    assert verdict == "ok"
    assert costs == [2.0, 2.1, 2.2]


def test_cost_per_item_growing_with_size_is_superlinear() -> None:
    verdict, _ = harness.growth_verdict([_run(10, 1.0), _run(40, 4.0), _run(160, 16.0)])
    assert verdict.startswith("superlinear (x16.00")


def test_falling_unit_cost_is_ok() -> None:
    verdict, _ = harness.growth_verdict([_run(4, 20.0), _run(16, 5.0), _run(64, 1.5)])
    assert verdict == "ok"


def test_growth_needs_two_good_runs_and_a_positive_base() -> None:
    assert harness.growth_verdict([_run(10, 1.0)])[0] == "n/a"
    assert harness.growth_verdict([_run(10, 1.0), _run(40, None, "exit 1")])[0] == "n/a"
    assert harness.growth_verdict([_run(10, 0.0), _run(40, 3.0)])[0] == "n/a"


def test_target_met_or_missed_both_ways() -> None:
    at_most = harness.Target("x", "<=", 5.0, "x <= 5")
    at_least = harness.Target("x", ">=", 5.0, "x >= 5")
    assert at_most.met(5.0) and not at_most.met(5.01)
    assert at_least.met(5.0) and not at_least.met(4.99)


def test_result_line_flattens_nested_figures() -> None:
    line = bench_result.result_line({"a": 1, "lat": {"p50": 2.0, "x": {"y": 3}}}, 0.5)
    assert json.loads(line) == {"metrics": {"a": 1, "lat_p50": 2.0, "lat_x_y": 3}, "unit_cost": 0.5}
    assert "\n" not in line  # the harness reads the last line


def _fake_report() -> dict[str, Any]:
    run = {
        "size": 16, "metrics": {"ratio": 1.7}, "unit_cost": 3.0, "wall_s": 2.0,
        "cpu_s": 1.5, "max_rss_mb": 42.0, "error": None,
    }  # fmt: skip
    return {
        "machine": {"cpus": 2, "processor": "x86_64", "python": "3.11.7", "platform": "Linux"},
        "started": 100.0,
        "finished": 160.0,
        "scenarios": [
            {
                "name": "export",
                "notes": "Size = rows.",
                "runs": [run],
                "targets": [
                    {"target": "ratio <= 1.5", "metric": "ratio", "value": 1.7, "status": "missed"},
                    {"target": "pool MB", "metric": "pool", "value": 12.0, "status": "reported"},
                ],
                "growth": {
                    "unit": "us per row",
                    "unit_costs": [3.0],
                    "verdict": "superlinear (x4)",
                },
            },
            {"name": "operator", "skipped": "script missing"},
        ],
    }


def test_markdown_lists_targets_growth_missed_and_skipped() -> None:
    text = harness.markdown(_fake_report())
    assert "2 CPUs, x86_64, Python 3.11.7" in text
    assert "Total wall time: 60 s." in text
    assert "| export | ratio <= 1.5 | 1.7 | missed |" in text
    assert "| export | pool MB | 12 | reported |" in text
    assert "| operator | — | — | skipped (script missing) |" in text
    assert "| export | 16 | 3 (us per row) | superlinear (x4) |" in text
    missed = text.split("## Missed targets")[1].split("##")[0]
    assert "- export: ratio <= 1.5 (measured 1.7)" in missed
    assert "- export: growth of us per row: superlinear (x4)" in missed
    assert "pool MB" not in missed
    assert "- size 16: wall 2.0 s, cpu 1.5 s, peak RSS 42 MB; ratio=1.7" in text


SCRIPT = """
import argparse, json, sys
p = argparse.ArgumentParser()
p.add_argument("--size", type=int)
p.add_argument("--fail", action="store_true")
a = p.parse_args()
print("progress goes to earlier lines")
if a.fail:
    sys.exit("broken on purpose")
print(json.dumps({"metrics": {"items": a.size, "twice": 2 * a.size}, "unit_cost": 1.0}))
"""


def test_real_run_of_a_trivial_scenario(tmp_path: Path) -> None:
    script = tmp_path / "bench_trivial.py"
    script.write_text(textwrap.dedent(SCRIPT))
    ok = harness.Scenario(
        "trivial",
        str(script),  # absolute: joined onto benchmarks/ it stays itself
        sizes=(1, 4, 16),
        targets=(
            harness.Target("twice", "<=", 32.0, "twice <= 32"),
            harness.Target("items", ">=", 17.0, "items >= 17"),
            harness.Target("max_rss_mb", ">=", 1.0, "the harness measured the process"),
        ),
        figures=(("items", "items at 16x"),),
    )
    broken = harness.Scenario("broken", str(script), (1, 2, 3), extra_args=("--fail",))
    missing = harness.Scenario("missing", str(tmp_path / "absent.py"), (1, 2, 3))
    report = harness.run_all([ok, broken, missing])

    trivial, failed, skipped = report["scenarios"]
    assert [r["size"] for r in trivial["runs"]] == [1, 4, 16]
    assert trivial["runs"][-1]["metrics"] == {"items": 16, "twice": 32}
    assert [t["status"] for t in trivial["targets"]] == ["met", "missed", "met", "reported"]
    assert trivial["growth"]["verdict"] == "ok"
    assert len(failed["runs"]) == 1  # stops at the first failing size
    assert "broken on purpose" in failed["runs"][0]["error"]
    assert skipped == {"name": "missing", "skipped": "script missing"}
    assert "| trivial | twice <= 32 | 32 | met |" in harness.markdown(report)
