"""The chart's webhook configurations, for an operator that runs as its own process.

With `sandboxer dev --external-operator` the playground installs what `helm install` would
(`webhook.managedByOperator: false`): one mutating and one validating configuration with
`failurePolicy: Fail`, pointing where the operator will serve (plain HTTP on loopback). Until
it answers, the embedded API refuses every sandbox create and update, as a cluster does while
the operator is not running, so nothing is stored without an owner and a budget check.
"""

from __future__ import annotations

from typing import Any

from sandboxer import GROUP, VERSION
from sandboxer.controller.admission import MUTATE_ID, OPERATIONS, VALIDATE_ID, VALIDATED
from sandboxer.devcluster.store import ResKey
from sandboxer.devcluster.webhooks import MUTATING, VALIDATING

NAME = "sandboxer-webhook"  # as the chart names them
MUTATE_WEBHOOK = "mutate.experimentsandboxes.sandboxer.io"
VALIDATE_WEBHOOK = "validate.experimentsandboxes.sandboxer.io"


def not_running_hint(kubeconfig: str) -> str:
    return (
        "Sandboxer admission is not running yet: nothing was stored. Start the operator with "
        f"`KUBECONFIG={kubeconfig} sandboxer operator --dev` and try again"
    )


def _webhook(name: str, url: str, operations: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": 10,
        "clientConfig": {"url": url},
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "resources": ["experimentsandboxes"],
                "operations": operations,
                "scope": "Namespaced",
            }
        ],
    }


def configurations(host: str, port: int) -> list[tuple[ResKey, dict[str, Any]]]:
    base = f"http://{host}:{port}"
    mutate = _webhook(MUTATE_WEBHOOK, f"{base}/{MUTATE_ID}", list(OPERATIONS))
    validate = _webhook(VALIDATE_WEBHOOK, f"{base}/{VALIDATE_ID}", list(VALIDATED))
    return [
        (MUTATING, {"metadata": {"name": NAME}, "webhooks": [mutate]}),
        (VALIDATING, {"metadata": {"name": NAME}, "webhooks": [validate]}),
    ]
