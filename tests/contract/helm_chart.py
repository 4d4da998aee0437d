"""Render the Helm chart with the real helm binary; shared by the chart contract tests."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sandboxer.devcluster.binaries import helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "sandboxer"
PRODUCTION_VALUES = ROOT / "examples" / "values-production.yaml"
NAMESPACE = "sandboxer-system"
# What the production cluster serves besides the core APIs: Prometheus Operator, cert-manager
# and kopf's peering CRDs.
PRODUCTION_APIS = ("monitoring.coreos.com/v1", "cert-manager.io/v1", "kopf.dev/v1")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm()), *args], capture_output=True, text=True, timeout=120, check=False
    )


def template_text(*extra: str, release: str = "sbx") -> str:
    proc = run_helm("template", release, str(CHART), "--namespace", NAMESPACE, *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def template_error(*extra: str) -> str:
    """stderr of a render that must fail."""
    proc = run_helm("template", "sbx", str(CHART), "--namespace", NAMESPACE, *extra)
    assert proc.returncode != 0, "helm template rendered values it should refuse"
    return proc.stderr


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@cache
def default_text() -> str:
    return template_text()


@cache
def production_text() -> str:
    apis = [arg for api in PRODUCTION_APIS for arg in ("--api-versions", api)]
    return template_text("-f", str(PRODUCTION_VALUES), *apis, release="prod")


def find(objs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    assert len(hits) == 1, f"expected one {kind} *{name_suffix}, got {len(hits)}"
    return hits[0]
