"""The operator's typed settings: built from CLI flags and environment, kept in kopf's memo."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sandboxer.loop.settings import LoopSettings
from sandboxer.manifests.networkpolicy import DEFAULT_INGRESS_NAMESPACES
from sandboxer.sandbox_rules import AllowAllBudgets, BudgetGate

_LOOP = LoopSettings()  # the defaults of the loop's knobs


DEFAULT_ADMIN_GROUPS = ("system:masters", "system:serviceaccounts:kube-system")


def _env_list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _own_service_account() -> tuple[str, ...]:
    """In a cluster, the operator's own identity as the API server names it in userInfo.

    The chart sets both variables through the downward API (metadata.namespace and
    spec.serviceAccountName).
    """
    namespace = os.environ.get("SANDBOXER_NAMESPACE")
    account = os.environ.get("SANDBOXER_SERVICE_ACCOUNT")
    if namespace and account:
        return (f"system:serviceaccount:{namespace}:{account}",)
    return ()


def _env_path(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass
class OperatorConfig:
    """Everything the operator can be told; see docs/configuration.md."""

    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    # Webhooks: None disables the server (the handlers stay registered).
    webhook_port: int | None = None
    webhook_host: str = "localhost"  # the name the API server calls us by
    webhook_addr: str | None = None  # the interface to listen on (None: all)
    webhook_managed: str | None = "sandboxer.io"  # name of the kopf-managed webhook configurations
    webhook_cert: str | None = None  # PEM files (e.g. from cert-manager); self-signed when unset
    webhook_key: str | None = None
    webhook_ca: str | None = None  # CA bundle for managed configurations (default: the cert)
    # Managed configurations point at this Service (port 443, in `own_namespace`) instead of a URL
    # built from webhook_host: API servers often cannot resolve cluster DNS names in URLs.
    webhook_service: str | None = None
    dev: bool = False  # plain-HTTP webhooks for the embedded API; never in production
    peering: bool = False  # HA: several replicas, one active (random priority)
    peering_name: str = "sandboxer"
    # Leader election of the accounting loop (controller/leader.py): the Lease in own_namespace
    # (else "default") and its duration; renew deadline and retry period scale with it.
    lease_name: str = "sandboxer-operator"
    lease_duration: float = 15.0
    liveness_endpoint: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    # The namespace the operator runs in (downward API; the webhook Service's namespace).
    own_namespace: str | None = field(default_factory=lambda: os.environ.get("SANDBOXER_NAMESPACE"))
    # /metrics (reconcile and sandbox metrics; the loop's too with a ledger) and the ledger;
    # without a ledger_url the accounting / budget / idle loop (controller/loop_runner.py)
    # does not run.
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from outside the pod
    ledger_url: str | None = None
    # The install's key for notebook tokens (manifests/secret.py); the chart mounts its
    # `<release>-token-key` Secret here. Without it tokens are random and Jupyter's activity
    # cannot be read.
    token_key_file: str | None = field(
        default_factory=lambda: _env_path("SANDBOXER_TOKEN_KEY_FILE")
    )
    # Seconds between two /api/status requests to one notebook (None: the loop interval, at
    # least 30 s).
    jupyter_interval: float | None = None
    export_enabled: bool = True
    export_sink: str | None = None  # None: under the ledger location
    export_interval: float = 3600.0  # seconds
    export_formats: tuple[str, ...] = ("parquet", "csv")
    # Connection: explicit server (tests, playground) or kubeconfig/in-cluster when unset.
    server: str | None = None
    token: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    # Policy knobs.
    ingress_namespaces: tuple[str, ...] = field(
        default_factory=lambda: _env_list(
            "SANDBOXER_INGRESS_NAMESPACES", DEFAULT_INGRESS_NAMESPACES
        )
    )
    operator_users: tuple[str, ...] = field(
        default_factory=lambda: _env_list("SANDBOXER_OPERATOR_USERS") + _own_service_account()
    )
    # Groups whose members may change or delete anyone's sandbox (cluster admins, and the
    # namespace and garbage-collection controllers, which delete sandboxes with their namespace).
    admin_groups: tuple[str, ...] = field(
        default_factory=lambda: _env_list("SANDBOXER_ADMIN_GROUPS", DEFAULT_ADMIN_GROUPS)
    )
    class_retry_delay: float = 30.0  # seconds before retrying a sandbox whose class is missing
    watch_server_timeout: int = 300  # seconds; the API server ends and kopf restarts watches
    budget_gate: BudgetGate = field(default_factory=AllowAllBudgets)
    # The loop's cadence and thresholds in seconds (docs/configuration.md); their defaults live
    # in loop/settings.py.
    loop_interval: float = _LOOP.interval  # between passes
    usage_refresh: float = _LOOP.usage_refresh.total_seconds()  # usage-only status writes
    budget_refresh: float = _LOOP.budget_refresh.total_seconds()  # budget status writes
    unknown_pod_grace: float = _LOOP.unknown_pod_grace.total_seconds()  # pods not yet indexed
    hour_close_grace: float = _LOOP.close_grace.total_seconds()  # an hour closes by then at last
    checkpoint_interval: float = _LOOP.checkpoint_interval.total_seconds()  # cursor saves
    telemetry_retention: float = _LOOP.telemetry_retention.total_seconds()  # replay's telemetry
    no_budget: str = field(  # "deny" or "allowance:<gpu-hours>" for owners no budget names
        default_factory=lambda: os.environ.get("SANDBOXER_NO_BUDGET", "deny")
    )


def token_key(config: OperatorConfig) -> bytes | None:
    """The token key: the mounted file, else in the playground the operator's own credential
    (every replica of a playground has it); None without either."""
    if config.token_key_file:
        try:
            key = Path(config.token_key_file).read_bytes().strip()
        except OSError:
            return None
        return key or None
    if config.dev and config.token:
        return config.token.encode()
    return None
