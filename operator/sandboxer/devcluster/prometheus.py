"""The playground's /metrics endpoints as a Prometheus `file_sd` target list.

`sandboxer dev --prometheus-targets targets.json` writes it once everything listens; point a
`file_sd_configs` entry of a local Prometheus at it (docs/install.md shows the scrape config).
Labels: `job` (sandboxer-operator or sandboxer-agent) and, for agents, `node`, as a
Kubernetes pod scrape with the chart's relabelling would give.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

OPERATOR_JOB = "sandboxer-operator"
AGENT_JOB = "sandboxer-agent"


def file_sd(operator_port: int | None, agent_ports: dict[str, int]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    if operator_port is not None:
        groups.append({"targets": [f"127.0.0.1:{operator_port}"], "labels": {"job": OPERATOR_JOB}})
    for node, port in sorted(agent_ports.items()):
        groups.append(
            {"targets": [f"127.0.0.1:{port}"], "labels": {"job": AGENT_JOB, "node": node}}
        )
    return groups


def write(path: Path, groups: list[dict[str, Any]]) -> Path:
    """Write atomically: Prometheus re-reads file_sd files when they change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(groups, indent=2) + "\n")
    os.replace(tmp, path)
    return path
