from __future__ import annotations

import json

import pytest
import structlog
from prometheus_client import generate_latest

from sandboxer.observability import logging as slog
from sandboxer.observability.metrics import RECONCILE_BUCKETS, OperatorMetrics


def test_json_logs_name_the_object_and_mask_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.reset_defaults()
    slog.configure(json=True)
    slog.get_logger().info("Created Secret", sandbox="team/nb", token="s3cr3t", api_token="x")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "Created Secret"
    assert line["sandbox"] == "team/nb"
    assert line["token"] == "***" and line["api_token"] == "***"
    assert "s3cr3t" not in json.dumps(line)


def test_metrics_mirror_controller_runtime_names_and_buckets() -> None:
    metrics = OperatorMetrics()
    metrics.observe_reconcile("experimentsandbox", "success", 0.02)
    metrics.observe_reconcile("experimentsandbox", "error", 0.3)
    text = generate_latest(metrics.registry).decode()
    assert (
        'sandboxer_controller_runtime_reconcile_total{controller="experimentsandbox",'
        'result="success"} 1.0' in text
    )
    assert (
        'sandboxer_controller_runtime_reconcile_errors_total{controller="experimentsandbox"} 1.0'
        in text
    )
    bucket = "sandboxer_controller_runtime_reconcile_time_seconds_bucket"
    assert f'{bucket}{{controller="experimentsandbox",le="0.025"}} 1.0' in text
    assert RECONCILE_BUCKETS[0] == 0.005 and RECONCILE_BUCKETS[-1] == 60


def test_stdlib_lines_share_the_renderer_with_the_object_as_a_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    structlog.reset_defaults()
    slog.configure(json=False, level="INFO")  # a terminal: structlog's console renderer
    ref = {"kind": "ExperimentSandbox", "namespace": "team", "name": "nb", "uid": None}
    logging.getLogger("kopf.objects").info("Handler succeeded.", extra={"k8s_ref": ref})
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "Handler succeeded." in x)
    assert not line.startswith("{")  # console, not JSON
    assert "kopf.objects" in line and "'name': 'nb'" in line and "uid" not in line
    slog.configure(json=True, level="INFO")
    logging.getLogger("kopf.objects").info("Handler succeeded.", extra={"k8s_ref": ref})
    as_json = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert as_json["object"] == {"kind": "ExperimentSandbox", "namespace": "team", "name": "nb"}
    assert as_json["logger"] == "kopf.objects"
