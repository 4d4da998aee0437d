"""The playground kubeconfig: one cluster, one user and one context per dev user.

Each context defaults to its user's home namespace (a team's namespace, `default` for admin).
The operator's service account gets the entry `sandboxer-operator`; with an external operator
the cluster also carries the dev settings that `sandboxer operator --dev` reads
(`devsettings.py`) as a kubeconfig extension, which kubectl keeps and ignores.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sandboxer.devcluster.auth import OPERATOR_USER, Users

CLUSTER_NAME = "sandboxer-dev"
OPERATOR_ENTRY = "sandboxer-operator"  # the kubeconfig user/context of the operator's account


def entry_name(username: str) -> str:
    return OPERATOR_ENTRY if username == OPERATOR_USER else username


def _context(user: str, namespace: str) -> dict[str, str]:
    return {"cluster": CLUSTER_NAME, "user": user, "namespace": namespace}


def build(
    server_url: str,
    users: Users,
    ca_pem: bytes,
    current: str = "admin",
    extensions: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    people = list(users.by_token.values())
    names = [entry_name(u.name) for u in people]
    cluster: dict[str, Any] = {
        "server": server_url,
        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
    }
    if extensions:
        cluster["extensions"] = [
            {"name": name, "extension": dict(value)} for name, value in extensions.items()
        ]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": cluster}],
        "users": [
            {"name": entry_name(u.name), "user": {"token": users.token(u.name)}} for u in people
        ],
        "contexts": [
            {"name": entry_name(u.name), "context": _context(entry_name(u.name), u.namespace)}
            for u in people
        ],
        "current-context": entry_name(current) if entry_name(current) in names else names[0],
        "preferences": {},
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    """Owner-readable only (the file holds bearer tokens), and atomically: written beside its
    place and renamed, so a reader that sees the file sees all of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    os.replace(tmp, path)
    return path
