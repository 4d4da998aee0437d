"""Where the API server is and how to authenticate, for the agent's few plain HTTP calls.

The agent makes two kinds of request (a status patch per report, an occasional pod list), so it
talks HTTP through aiohttp instead of loading the full `kubernetes` client (~25 MB of RSS on a
DaemonSet that runs on every GPU node). Supported: in-cluster service accounts (the production
path; the token file is re-read on every request because bound tokens rotate), and kubeconfig
files with a server, CA, client certificate/key or bearer token (inline `-data` or file paths).
Exec and auth-provider plugins are refused with a clear message.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(ValueError):
    pass


@dataclass
class KubeEndpoint:
    server: str
    ssl_context: ssl.SSLContext | None = None
    token: str | None = None
    token_file: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def auth_headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = self.token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}


def in_cluster() -> KubeEndpoint | None:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port or not (SERVICE_ACCOUNT / "token").exists():
        return None
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    host = f"[{host}]" if ":" in host else host
    return KubeEndpoint(f"https://{host}:{port}", context, token_file=SERVICE_ACCOUNT / "token")


def _named(items: list[dict[str, Any]], name: str, what: str, path: Path) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return dict(item.get(what) or {})
    raise KubeconfigError(f"{path}: no {what} named {name!r}")


def _material(entry: dict[str, Any], key: str, base: Path, scratch: Path) -> str | None:
    """A file path for `key` (e.g. certificate-authority), writing `key-data` out if inline."""
    if entry.get(f"{key}-data"):
        out = scratch / key
        out.write_bytes(base64.b64decode(entry[f"{key}-data"]))
        return str(out)
    if entry.get(key):
        return str(base / entry[key])
    return None


def from_kubeconfig(path: Path) -> KubeEndpoint:
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    current = config.get("current-context")
    if not current:
        raise KubeconfigError(f"{path}: no current-context set")
    context = _named(config.get("contexts", []), current, "context", path)
    cluster = _named(config.get("clusters", []), context.get("cluster", ""), "cluster", path)
    user = _named(config.get("users", []), context.get("user", ""), "user", path)
    if "exec" in user or "auth-provider" in user:
        raise KubeconfigError(
            f"{path}: user {context.get('user')!r} uses an exec/auth-provider plugin, which the "
            "agent does not run; use a service account (in-cluster), a token or a client cert"
        )
    server = str(cluster.get("server", "")).rstrip("/")
    if not server:
        raise KubeconfigError(f"{path}: cluster {context.get('cluster')!r} has no server")
    endpoint = KubeEndpoint(server, token=user.get("token"))
    if user.get("tokenFile"):
        endpoint.token_file = path.parent / user["tokenFile"]
    if server.startswith("https://"):
        with tempfile.TemporaryDirectory() as tmp:
            scratch = Path(tmp)
            ca = _material(cluster, "certificate-authority", path.parent, scratch)
            ctx = ssl.create_default_context(cafile=ca)
            if cluster.get("insecure-skip-tls-verify"):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            cert = _material(user, "client-certificate", path.parent, scratch)
            key = _material(user, "client-key", path.parent, scratch)
            if cert:
                ctx.load_cert_chain(cert, key)
        endpoint.ssl_context = ctx
    return endpoint


def load_endpoint(kubeconfig: str | None = None) -> KubeEndpoint:
    """`kubeconfig` if given, else in-cluster, else $KUBECONFIG or ~/.kube/config."""
    if kubeconfig:
        return from_kubeconfig(Path(kubeconfig))
    endpoint = in_cluster()
    if endpoint is not None:
        return endpoint
    default = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
    path = Path(default).expanduser()
    if not path.exists():
        raise KubeconfigError(
            "no Kubernetes credentials: not in a cluster and no kubeconfig at "
            f"{path}; pass --kubeconfig"
        )
    return from_kubeconfig(path)
