from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandboxer.cli import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-name", "n", "--backend", "cuda"], "unknown backend 'cuda'"),
        (["--node-name", "n", "--sample-interval", "60"], "report interval"),
        (["--node-name", "n", "--backend", "simulated", "--kubeconfig", "KCFG"], "current-context"),
    ],
)
def test_agent_refuses_bad_settings_with_a_reason(
    tmp_path: Path, args: list[str], message: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    args = [str(kubeconfig) if a == "KCFG" else a for a in args]
    result = CliRunner().invoke(app, ["agent", *args], env={"NODE_NAME": ""})
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_agent_needs_a_node_name() -> None:
    result = CliRunner().invoke(app, ["agent"], env={"NODE_NAME": ""})
    assert result.exit_code == 2
    assert "node-name" in result.output
