"""The Secret holding the Jupyter token: created once, never rewritten, never logged."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from sandboxer.manifests.inputs import Sandbox
from sandboxer.manifests.labels import sandbox_labels

TOKEN_KEY = "token"  # noqa: S105 - the key name inside the Secret, not a secret
TOKEN_BYTES = 32


def new_token() -> str:
    """32 random bytes, URL-safe: the Jupyter token of one sandbox."""
    return secrets.token_urlsafe(TOKEN_BYTES)


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
