"""The playground kubeconfig: one cluster, one user and one context per dev user."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from sandboxer.devcluster.auth import Users

CLUSTER_NAME = "sandboxer-dev"


def build(server_url: str, users: Users, ca_pem: bytes, current: str = "admin") -> dict[str, Any]:
    names = users.names()
    cluster = {
        "server": server_url,
        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": cluster}],
        "users": [{"name": n, "user": {"token": users.token(n)}} for n in names],
        "contexts": [
            {"name": n, "context": {"cluster": CLUSTER_NAME, "user": n, "namespace": "default"}}
            for n in names
        ],
        "current-context": current if current in names else names[0],
        "preferences": {},
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    """Write owner-readable only: the file holds bearer tokens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    os.replace(tmp, path)
    return path
