from __future__ import annotations

from typer.testing import CliRunner

from sandboxer.cli import app


def test_help_lists_every_fixed_subcommand() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("operator", "agent", "dev", "demo", "crds", "export"):
        assert name in result.output
