"""`make bench`: run every scenario at 1x/4x/16x and report each figure against its target.

Usage: python benchmarks/run.py [--only NAME ...]

Targets are read at the largest (16x) size, which is the DESIGN.md size wherever it fits in the
15-minute budget of `make bench` on two cores; each scenario's notes say what its size means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Scenario, Target, markdown, run_all, write

SCENARIOS: list[Scenario] = [
    Scenario(
        "agent-tick",
        "bench_agent.py",
        sizes=(4, 16, 64),
        targets=(
            Target(
                "cpu_ms_per_tick_mean",
                "<=",
                5.0,
                "agent tick, 8 GPUs, 64 processes: <= 5 ms CPU per tick",
            ),
            Target("max_rss_mb", "<=", 80.0, "agent tick, 8 GPUs, 64 processes: RSS <= 80 MB"),
        ),
        figures=(("report_build_cpu_ms", "CPU to build one GPUNodeReport (ms)"),),
        growth_unit="us CPU per tick per process",
        notes="Size = GPU compute processes on one node with 8 GPUs; 16x = 64 processes, the "
        "DESIGN.md case. RSS is the whole process (wait4) with every module the agent loads.",
    ),
    Scenario(
        "embedded-api",
        "bench_embedded_api.py",
        sizes=(625, 2500, 10_000),
        figures=(
            ("list_all_p50_ms", "list of 10,000 ExperimentSandboxes over HTTPS: p50 (ms)"),
            ("watch_event_p50_ms", "create-to-watch-event latency: p50 (ms)"),
            ("watch_initial_all_s", "initial watch delivering all 10,000 objects (s)"),
            ("heap_bytes_per_object", "store heap per object (bytes, tracemalloc)"),
            ("rss_bytes_per_object", "process RSS growth per object created (bytes)"),
        ),
        growth_unit="us of full-list p50 per object",
        notes="Size = ExperimentSandbox objects in the embedded API; 16x = 10,000. DESIGN.md "
        "sets no target of its own for the embedded API (it is a development tool); these "
        "figures bound the operator scenarios that run on it.",
    ),
    Scenario(
        "accounting",
        "bench_accounting.py",
        sizes=(625, 2500, 10_000),
        # As the operator's loop does (loop/accounting_loop.py): agent restarts seen in one pass
        # share that pass's single checkpoint commit instead of one full commit each.
        extra_args=("--no-epoch-commits",),
        targets=(
            Target(
                "error_vs_truth_pct",
                "<=",
                0.1,
                "metering error vs ground truth with agent and operator restarts: <= 0.1 %",
            ),
        ),
        figures=(
            ("cpu_per_report_us", "CPU per folded node report (us)"),
            ("checkpoint_encode_cpu_ms", "CPU per checkpoint commit (ms)"),
            ("core_share_at_30s_reports_pct", "share of one core with 30 s reports (%)"),
        ),
        growth_unit="us accounting CPU per sandbox per report round",
        notes="Size = sandboxes (8 per node); 16x = 10,000. The month is scaled: 30 days x "
        "0.5 h of usage each, 900 s report interval, random agent restarts (5 % crash and lose "
        "their unreported tail), 5 operator restarts from the last checkpoint, 2 % replayed "
        "reports. Error and ground truth are measured in the same run.",
    ),
    Scenario(
        "reclaim",
        "bench_reclaim.py",
        sizes=(63, 250, 1000),
        targets=(
            Target(
                "latency_s_max",
                "<=",
                630.0,
                "idle reclaim latency <= idle-after (600 s) + one report interval (30 s)",
            ),
        ),
        figures=(
            ("cpu_per_pass_ms", "loop CPU per pass (ms)"),
            ("latency_s_p50", "reclaim latency after last activity: p50 (s)"),
        ),
        growth_unit="us loop CPU per sandbox per pass",
        notes="Size = sandboxes (8 per node, a quarter on MIG slices, a fifth busy "
        "throughout); 16x = 1,000. Simulated clock: idle after 10 m, warn 2 m before, one "
        "report per node every 30 s at its own phase, one loop pass per interval.",
    ),
    Scenario(
        "export",
        "bench_export.py",
        sizes=(62_500, 250_000, 1_000_000),
        targets=(
            Target(
                "ratio_write_path",
                "<=",
                1.5,
                "export of 1,000,000 ledger rows: <= 1.5 x a bare pyarrow write of the table",
            ),
            Target(
                "parquet_only_ratio_write_path",
                "<=",
                1.5,
                "Parquet-only export: <= 1.5 x a bare pyarrow Parquet write (issue 19)",
            ),
        ),
        figures=(
            ("export_s", "export wall time (s)"),
            ("bare_pyarrow_write_s", "bare pyarrow write, Parquet + gzip CSV (s)"),
            ("parquet_only_export_s", "Parquet-only export wall time, warm (s)"),
            ("parquet_only_bare_write_s", "bare pyarrow Parquet write (s)"),
            ("export_peak_rss_mb", "export process peak RSS (MB)"),
            ("export_arrow_pool_peak_mb", "Arrow memory pool peak (MB)"),
            ("parquet_only_peak_rss_mb", "Parquet-only export process peak RSS (MB)"),
        ),
        timeout=900.0,
        growth_unit="us export CPU per row",
        notes="Size = ledger rows over one month; 16x = 1,000,000. The export, a Parquet-only "
        "export and the bare pyarrow write of the same FOCUS table each run in a child process "
        "of their own; the ratios take off the time to read the ledger files into one table "
        "(ratio_end_to_end does not). The 10,000,000-row memory figure is a separate run "
        "(benchmarks/README.md).",
    ),
    Scenario(
        "provisioning",
        "bench_provisioning.py",
        sizes=(63, 250, 1000),
        targets=(
            Target(
                "ready_all_s",
                "<=",
                60.0,
                "1,000 sandboxes applied at once, 2 cores: all Ready in <= 60 s",
            ),
            Target(
                "requests_per_sandbox_over_min",
                "<=",
                1.5,
                "API requests per sandbox <= 1.5 x the minimum needed",
            ),
        ),
        timeout=600.0,
        growth_unit="ms wall per sandbox",
        notes="Size = sandboxes applied at once, one GPU each on 8-GPU nodes, real operator "
        "in-process on the embedded API; minimum = 6 writes (5 children + 1 status).",
    ),
    Scenario(
        "time-to-notebook",
        "bench_time_to_notebook.py",
        sizes=(6, 25, 100),
        targets=(
            Target("ready_p50_s", "<=", 3.0, "playground kubectl apply -> Ready: p50 <= 3 s"),
            Target("ready_p99_s", "<=", 10.0, "... p99 <= 10 s with 100 applied together"),
        ),
        timeout=300.0,
        growth_unit="ms wall per sandbox",
        notes="Size = sandboxes applied together through the full playground (operator, "
        "webhooks, agents); the simulated container start takes 0.5 s.",
    ),
    Scenario(
        "operator-steady",
        "bench_operator_steady.py",
        sizes=(625, 2500, 10_000),
        targets=(
            Target("max_rss_mb", "<=", 300.0, "operator at 10,000 sandboxes: RSS <= 300 MB"),
            Target(
                "cpu_share_of_one_core_pct",
                "<=",
                5.0,
                "operator at 10,000 sandboxes, steady state: <= 5 % of one core",
            ),
        ),
        figures=(
            ("cpu_s_per_pass", "loop CPU per pass (s)"),
            ("first_pass_cpu_s", "first pass after start-up (s)"),
            ("api_writes_per_sandbox_minute", "API writes per sandbox per minute"),
        ),
        extra_args=("--minutes", "2"),
        growth_unit="ms loop CPU per sandbox per pass",
        notes="Size = running one-GPU sandboxes (8 per node, one budget per 100); 16x = 10,000. "
        "The real loop code (SnapshotBuilder over kopf-shaped indexes, AccountingLoop with a "
        "directory ledger) for 2 simulated minutes: passes every 10 s, each agent reporting every "
        "30 s; patches are fed back into the indexes as the watch would. RSS is the whole process "
        "with the operator's modules loaded.",
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    args = parser.parse_args()
    names = {s.name for s in SCENARIOS}
    unknown = set(args.only or ()) - names
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {sorted(names)}")
    report = run_all(SCENARIOS, set(args.only) if args.only else None)
    js, md = write(report)
    text = markdown(report)
    print(text)
    print(f"Wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
