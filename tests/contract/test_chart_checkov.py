"""checkov finds nothing on the rendered chart but the checks the chart skips with a reason."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.contract.helm_chart import ROOT, default_text, objects, production_text

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def _checkov(manifest: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(
            f"{CHECKOV} is missing: run `make test` (or `make .venv-checkov/.installed-stamp`)"
        )
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = subprocess.run(
        [str(CHECKOV), "--framework", "kubernetes", "--skip-download", "--output", "json",
         "-f", str(manifest)],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip
    assert proc.stdout.strip(), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("render", [default_text, production_text], ids=["default", "production"])
def test_rendered_chart_passes_checkov(render: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(render())
    report = _checkov(manifest)
    results = report.get("results", {})
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in results.get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["passed"] > 100
    assert results.get("skipped_checks"), "the chart's checkov.io/skip annotations were ignored"
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} skipped without a reason"


def test_every_skip_annotation_has_a_written_reason() -> None:
    skips = [
        value
        for obj in objects(default_text()) + objects(production_text())
        for key, value in (obj["metadata"].get("annotations") or {}).items()
        if key.startswith("checkov.io/skip")
    ]
    assert skips, "the agent's hostPID must be a documented skip"
    for value in skips:
        check, _, reason = value.partition("=")
        assert check.startswith("CKV"), value
        assert len(reason.split()) >= 5, f"{check} needs a real reason, got {reason!r}"
