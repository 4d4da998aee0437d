"""`make bench`: run every scenario at 1x/4x/16x and report each figure against its target.

Usage: python benchmarks/run.py [--only NAME ...]
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
        sizes=(2, 8, 32),
        targets=(
            Target("cpu_ms_per_tick", "<=", 5.0, "agent tick, 8 GPUs x 64 processes: <= 5 ms CPU"),
            Target("rss_mb", "<=", 80.0, "agent RSS <= 80 MB"),
        ),
        growth_unit="ms CPU per GPU",
        notes="Size = GPUs on the node, 8 processes each; targets read at 8 GPUs x 64 processes.",
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    args = parser.parse_args()
    report = run_all(SCENARIOS, set(args.only) if args.only else None)
    js, md = write(report)
    text = markdown(report)
    print(text)
    print(f"Wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
