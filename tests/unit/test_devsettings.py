"""The playground kubeconfig's contexts, and the dev settings an operator process reads from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sandboxer.cli import app
from sandboxer.controller.config import OperatorConfig
from sandboxer.devcluster import kubeconfig
from sandboxer.devcluster.auth import OPERATOR_GROUPS, OPERATOR_USER, User, Users
from sandboxer.devcluster.devsettings import (
    DEV_LEASE_DURATION,
    EXTENSION,
    DevSettings,
    join_playground,
    load,
)

CA = b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"
SETTINGS = DevSettings(
    webhook_port=40123, ledger_url="/srv/ledger", loop_interval=0.5,
    operator_context="sandboxer-operator",
)  # fmt: skip


def playground_users() -> Users:
    users = Users.defaults()
    users.add(User(OPERATOR_USER, OPERATOR_GROUPS), token="operator-token")
    return users


def write(path: Path, extensions: bool = True) -> Path:
    config = kubeconfig.build(
        "https://127.0.0.1:6443",
        playground_users(),
        CA,
        extensions={EXTENSION: SETTINGS.extension()} if extensions else None,
    )
    return kubeconfig.write(path, config)


def test_each_context_defaults_to_its_users_team_namespace(tmp_path: Path) -> None:
    doc = yaml.safe_load(write(tmp_path / "kc").read_text())
    namespaces = {c["name"]: c["context"]["namespace"] for c in doc["contexts"]}
    assert namespaces == {
        "admin": "default",
        "alice": "team-ml",
        "carol": "team-ml",
        "bob": "team-vision",
        "sandboxer-operator": "default",
    }
    assert doc["current-context"] == "admin"
    assert (tmp_path / "kc").stat().st_mode & 0o077 == 0
    assert not list(tmp_path.glob(".*.tmp"))  # renamed into place, nothing left beside it


def test_load_finds_the_settings_and_the_operators_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = write(tmp_path / "plain", extensions=False)
    dev = write(tmp_path / "dev")
    assert load(str(plain)) is None
    monkeypatch.setenv(
        "KUBECONFIG", os.pathsep.join([str(tmp_path / "absent"), str(plain), str(dev)])
    )
    found = load()
    assert found is not None
    assert (found.settings, found.path, found.token) == (SETTINGS, dev, "operator-token")
    assert (found.server, found.ca_pem) == ("https://127.0.0.1:6443", CA.decode())


def test_join_takes_the_playground_settings_and_the_flags_win(tmp_path: Path) -> None:
    path = str(write(tmp_path / "dev"))
    joined = join_playground(OperatorConfig(dev=True), kubeconfig=path)
    assert joined is not None
    config, line = joined
    assert (config.webhook_port, config.webhook_host, config.webhook_managed) == (
        40123,
        "127.0.0.1",
        None,
    )
    assert (config.ledger_url, config.loop_interval, config.token) == (
        "/srv/ledger",
        0.5,
        "operator-token",
    )
    assert OPERATOR_USER in config.operator_users
    assert "ledger /srv/ledger" in line
    flags = join_playground(OperatorConfig(), 40123, "/elsewhere", 3.0, kubeconfig=path)
    assert flags is not None
    assert (flags[0].ledger_url, flags[0].loop_interval) == ("/elsewhere", 3.0)
    assert config.lease_duration == DEV_LEASE_DURATION < OperatorConfig().lease_duration
    # A second replica serves elsewhere; the line says the playground does not call it.
    second = join_playground(OperatorConfig(), 9443, lease_duration=5.0, kubeconfig=path)
    assert second is not None
    assert (second[0].webhook_port, second[0].lease_duration) == (9443, 5.0)
    assert "not called: the playground calls 40123" in second[1]
    assert join_playground(OperatorConfig(), kubeconfig=str(tmp_path / "nothing")) is None


def test_a_settings_context_without_token_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "dev")
    doc = yaml.safe_load(path.read_text())
    doc["users"] = [u for u in doc["users"] if u["name"] != "sandboxer-operator"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="has no token; write the kubeconfig again"):
        load(str(path))


def test_operator_refuses_a_lease_duration_it_cannot_renew_within(tmp_path: Path) -> None:
    path = write(tmp_path / "dev")
    result = CliRunner().invoke(
        app, ["operator", "--dev", "--lease-duration", "500ms"], env={"KUBECONFIG": str(path)}
    )
    assert result.exit_code == 2
    assert "--lease-duration" in result.output and "at least 1s" in result.output
    assert "operator-token" not in result.output
