from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from sandboxer.metering.kubeconfig import KubeconfigError, from_kubeconfig, load_endpoint


def write(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    }))  # fmt: skip
    return path


def test_plain_http_with_a_token(tmp_path: Path) -> None:
    endpoint = load_endpoint(
        str(write(tmp_path, {"server": "http://127.0.0.1:1/"}, {"token": "t"}))
    )
    assert endpoint.server == "http://127.0.0.1:1"
    assert endpoint.ssl_context is None
    assert endpoint.auth_headers() == {"Authorization": "Bearer t"}


def test_https_with_inline_ca_and_client_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("agent")
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    cluster = {"server": "https://api.example:6443",
               "certificate-authority-data": b64(ca.cert_pem.bytes())}  # fmt: skip
    user = {"client-certificate-data": b64(cert.cert_chain_pems[0].bytes()),
            "client-key-data": b64(cert.private_key_pem.bytes())}  # fmt: skip
    endpoint = from_kubeconfig(write(tmp_path, cluster, user))
    assert endpoint.ssl_context is not None
    assert endpoint.auth_headers() == {}
    token_file = tmp_path / "token"
    token_file.write_text("rotated\n")
    endpoint = from_kubeconfig(write(tmp_path, {"server": "http://x"}, {"tokenFile": "token"}))
    assert endpoint.auth_headers() == {"Authorization": "Bearer rotated"}


@pytest.mark.parametrize(
    ("cluster", "user", "message"),
    [
        ({"server": "https://x"}, {"exec": {"command": "aws"}}, "exec/auth-provider plugin"),
        ({}, {"token": "t"}, "has no server"),
    ],
)
def test_unsupported_or_broken_kubeconfigs_say_why(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], message: str
) -> None:
    with pytest.raises(KubeconfigError, match=message):
        from_kubeconfig(write(tmp_path, cluster, user))


def test_missing_kubeconfig_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(KubeconfigError, match="pass --kubeconfig"):
        load_endpoint()
    (tmp_path / "empty").write_text("{}")
    with pytest.raises(KubeconfigError, match="no current-context"):
        load_endpoint(str(tmp_path / "empty"))
