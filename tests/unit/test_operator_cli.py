"""`sandboxer operator` flags and the connection it resolves."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest
from typer.testing import CliRunner

from sandboxer.cli import app
from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.startup import resolve_connection


def test_help_lists_the_flags() -> None:
    result = CliRunner().invoke(app, ["operator", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--namespace",
        "--all-namespaces",
        "--webhook-port",
        "--webhook-host",
        "--dev",
        "--peering",
    ):
        assert flag in result.output


def test_namespace_and_all_namespaces_conflict() -> None:
    result = CliRunner().invoke(app, ["operator", "-n", "team-a", "-A"])
    assert result.exit_code != 0
    assert "either --namespace or --all-namespaces" in result.output


def test_explicit_server_wins() -> None:
    info = resolve_connection(OperatorConfig(server="http://127.0.0.1:1", token="t"))
    assert (info.server, info.token) == ("http://127.0.0.1:1", "t")


def test_kubeconfig_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://10.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    info = resolve_connection(OperatorConfig())
    assert (info.server, info.token) == ("https://10.0.0.1:6443", "abc")


def test_no_credentials_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(kopf.LoginError, match="set KUBECONFIG"):
        resolve_connection(OperatorConfig())
