"""Every argument and variable the chart gives a container is one the code reads, and back.

The containers' args must be options of the `sandboxer` subcommand they start, and each env var
must be read by its CLI (typer `envvar=`) or by a named reader below. Durations are written the
way the chart writes them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from sandboxer.chargeback.settings import ExportSettings
from sandboxer.cli import app
from sandboxer.cli_options import seconds as _seconds
from tests.contract.helm_chart import find, objects, production_text, template_text

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Variables read outside the typer options, and by whom.
OTHER_READERS = {
    # controller/config.py: the operator's own service account user.
    "SANDBOXER_NAMESPACE": "operator",
    "SANDBOXER_SERVICE_ACCOUNT": "operator",
    # controller/leader.py and peer_gate.py: the Lease identity, the advertised address.
    "SANDBOXER_POD_NAME": "operator",
    "SANDBOXER_POD_IP": "operator",
    # controller/config.py: the key notebook tokens derive from (Jupyter activity).
    "SANDBOXER_TOKEN_KEY_FILE": "operator",
    # boto3's credential and endpoint chain (the S3 ledger and export).
    "AWS_REGION": "operator",
    "AWS_ENDPOINT_URL_S3": "operator",
    "AWS_SHARED_CREDENTIALS_FILE": "operator",
    # The NVIDIA container toolkit, when it sets up the agent's container.
    "NVIDIA_VISIBLE_DEVICES": "agent",
    "NVIDIA_DRIVER_CAPABILITIES": "agent",
    # chargeback/settings.py: ExportSettings, built by the operator's scheduled export.
    "SANDBOXER_EXPORT_PROVIDER_NAME": "operator",
}
assert "provider_name" in ExportSettings.model_fields  # what reads SANDBOXER_EXPORT_PROVIDER_NAME


def _command(name: str) -> Any:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _envvars(name: str) -> set[str]:
    out = set()
    for param in _command(name).params:
        envvar = getattr(param, "envvar", None)
        out |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return out


def _options(name: str) -> set[str]:
    return {opt for param in _command(name).params for opt in param.opts + param.secondary_opts}


def _container(text: str, kind: str, suffix: str) -> dict[str, Any]:
    pod = find(objects(text), kind, suffix)["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    return container


RENDERS = {
    "default": lambda: template_text(),
    "production": production_text,
    "managed webhooks": lambda: template_text("--set", "webhook.managedByOperator=true"),
}


@pytest.mark.parametrize("render", RENDERS.values(), ids=RENDERS.keys())
@pytest.mark.parametrize(
    ("kind", "suffix", "command"),
    [("Deployment", "-operator", "operator"), ("DaemonSet", "-agent", "agent")],
)
def test_every_chart_arg_and_env_var_is_read(
    render: Any, kind: str, suffix: str, command: str
) -> None:
    container = _container(render(), kind, suffix)
    assert container["args"][0] == command
    options = _options(command)
    for arg in container["args"][1:]:
        assert arg.split("=", 1)[0] in options, f"{command} has no option {arg}"
    readers = _envvars(command) | {k for k, v in OTHER_READERS.items() if v == command}
    for var in container["env"]:
        assert var["name"] in readers, f"nothing in `sandboxer {command}` reads {var['name']}"


def test_chart_durations_parse() -> None:
    agent = {
        e["name"]: e.get("value") for e in _container(template_text(), "DaemonSet", "-agent")["env"]
    }
    assert _seconds(agent["SANDBOXER_SAMPLE_INTERVAL"]) == 10.0
    assert _seconds(agent["SANDBOXER_REPORT_INTERVAL"]) == 30.0
    assert _seconds("1h") == 3600.0
    assert _seconds("2.5") == 2.5
    for bad in ("0s", "ten", "-1"):
        with pytest.raises(typer.BadParameter):
            _seconds(bad)


@pytest.mark.parametrize("command", ["operator", "agent"])
def test_configuration_docs_list_every_flag_and_variable(command: str) -> None:
    docs = (DOCS / "configuration.md").read_text()
    for name in _envvars(command) | {k for k, v in OTHER_READERS.items() if v == command}:
        if not name.startswith(("AWS_", "NVIDIA_")):
            assert f"`{name}`" in docs, f"docs/configuration.md does not list {name}"
    for option in _options(command):
        if option.startswith("--") and option != "--help":
            listed = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", docs)
            assert listed, f"docs/configuration.md does not list {option}"
