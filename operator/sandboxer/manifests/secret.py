"""The Secret holding the Jupyter token: created once, never rewritten, never logged.

With the install's token key (the chart's `<release>-token-key` Secret, mounted into the
operator) a sandbox's token is derived from the key and the sandbox's identity, so the operator
can ask the notebook's `/api/status` for its user's activity without being allowed to read any
Secret (it may only create them). Without a key the token is random and Jupyter activity cannot
be read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import sandbox_labels

TOKEN_KEY = "token"  # noqa: S105 - the key name inside the Secret, not a secret
TOKEN_BYTES = 32


def new_token() -> str:
    """32 random bytes, URL-safe: the Jupyter token of one sandbox."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def derived_token(key: bytes, namespace: str, name: str, uid: str) -> str:
    """HMAC-SHA256 of the sandbox's identity under the token key, URL-safe (43 characters).

    The uid makes a sandbox created again under the same name get another token."""
    mac = hmac.new(key, f"{namespace}/{name}/{uid}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sandbox_token(sandbox: Sandbox, key: bytes | None) -> str:
    """The token a new sandbox gets: derived when the key and the uid are known, else random."""
    if key is not None and sandbox.uid:
        return derived_token(key, sandbox.namespace, sandbox.name, sandbox.uid)
    return new_token()


def secret_name(sandbox: Sandbox) -> str:
    return f"{sandbox.name}-token"


def build_secret(sandbox: Sandbox, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(sandbox),
            "namespace": sandbox.namespace,
            "labels": sandbox_labels(sandbox.name, sandbox.spec.owner, sandbox.spec.class_),
        },
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }
