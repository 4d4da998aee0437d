"""What an operator of its own process needs to join a playground, kept in its kubeconfig.

`sandboxer dev --external-operator` writes these settings into the kubeconfig as an extension
of its cluster entry (kubectl keeps and ignores extensions); `KUBECONFIG=<file> sandboxer
operator --dev` reads them back: the operator's own service-account credentials, the port its
webhooks must serve on (the playground's webhook configurations point there), the ledger
directory of `sandboxer dev --ledger` and the loop interval. Flags given to the operator win.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandboxer.controller.config import OperatorConfig
from sandboxer.devcluster.auth import OPERATOR_USER
from sandboxer.devcluster.rbac.policy import NAMESPACE

EXTENSION = "sandboxer.io/dev"
# A killed playground operator's successor waits this long for the Lease, not kube's 15 s.
DEV_LEASE_DURATION = 3.0
# Notebooks' /api/status asked every 2 s (a cluster's operator asks every 30 s at most).
DEV_JUPYTER_INTERVAL = 2.0


@dataclass(frozen=True)
class DevSettings:
    webhook_port: int
    ledger_url: str | None
    loop_interval: float
    operator_context: str  # the kubeconfig context (and user) the operator authenticates as
    metrics_port: int | None = None  # where --prometheus-targets expects the operator's /metrics

    def extension(self) -> dict[str, Any]:
        return {
            "webhookPort": self.webhook_port,
            "ledger": self.ledger_url,
            "loopInterval": self.loop_interval,
            "operatorContext": self.operator_context,
            "metricsPort": self.metrics_port,
        }


@dataclass(frozen=True)
class DevConnection:
    """The settings with the cluster's URL, CA and the operator's token, from one kubeconfig."""

    settings: DevSettings
    server: str
    token: str
    ca_pem: str
    path: Path


def kubeconfig_paths(explicit: str | None = None) -> list[Path]:
    """KUBECONFIG's files in order (as kubectl merges them), else ~/.kube/config."""
    raw = explicit if explicit is not None else os.environ.get("KUBECONFIG", "")
    paths = [Path(p) for p in raw.split(os.pathsep) if p]
    return paths or [Path.home() / ".kube" / "config"]


def _named(items: Any, name: str, key: str) -> dict[str, Any]:
    for item in items or ():
        if isinstance(item, dict) and item.get("name") == name:
            value = item.get(key)
            return value if isinstance(value, dict) else {}
    return {}


def load(explicit: str | None = None) -> DevConnection | None:
    """The first kubeconfig whose cluster carries the playground's settings, if any."""
    for path in kubeconfig_paths(explicit):
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(doc, dict):
            continue
        for entry in doc.get("clusters") or ():
            cluster = (entry or {}).get("cluster") or {}
            ext = _named(cluster.get("extensions"), EXTENSION, "extension")
            if not ext:
                continue
            settings = DevSettings(
                webhook_port=int(ext["webhookPort"]),
                ledger_url=ext.get("ledger"),
                loop_interval=float(ext.get("loopInterval") or 10.0),
                operator_context=str(ext["operatorContext"]),
                metrics_port=int(ext["metricsPort"]) if ext.get("metricsPort") else None,
            )
            context = _named(doc.get("contexts"), settings.operator_context, "context")
            user = _named(doc.get("users"), str(context.get("user", "")), "user")
            if not user.get("token"):
                raise ValueError(
                    f"{path}: the playground's context {settings.operator_context!r} has no "
                    "token; write the kubeconfig again with `sandboxer dev --external-operator`"
                )
            ca = base64.b64decode(cluster.get("certificate-authority-data", "")).decode()
            return DevConnection(settings, str(cluster["server"]), str(user["token"]), ca, path)
    return None


def join_playground(
    config: OperatorConfig,
    webhook_port: int | None = None,
    ledger_url: str | None = None,
    loop_interval: float | None = None,
    lease_duration: float | None = None,
    kubeconfig: str | None = None,
) -> tuple[OperatorConfig, str] | None:
    """`config` made to join the playground of the kubeconfig, with a line saying so; None
    when no kubeconfig carries playground settings. Explicit flags (the ledger, the loop
    interval, the lease duration) win. The playground's webhook configurations call its own
    port; a second replica given another --webhook-port is not called (it stands by, and hands
    budget checks to the leader if it leads nothing)."""
    dev = load(kubeconfig)
    if dev is None:
        return None
    s = dev.settings
    port = webhook_port if webhook_port is not None else s.webhook_port
    joined = dataclasses.replace(
        config,
        server=dev.server,
        token=dev.token,
        ca_data=dev.ca_pem,
        webhook_port=port,
        webhook_host="127.0.0.1",
        webhook_addr="127.0.0.1",
        webhook_managed=None,  # the playground installed the chart's configurations
        operator_users=(*config.operator_users, OPERATOR_USER),
        ledger_url=ledger_url or s.ledger_url,
        metrics_port=config.metrics_port or s.metrics_port,
        loop_interval=loop_interval or s.loop_interval,
        class_retry_delay=2.0,
        lease_duration=lease_duration or DEV_LEASE_DURATION,
        own_namespace=NAMESPACE,  # the Lease where the chart's Role lets it write one
        jupyter_interval=config.jupyter_interval or DEV_JUPYTER_INTERVAL,
    )
    called = (
        "" if port == s.webhook_port else f" (not called: the playground calls {s.webhook_port})"
    )
    where = (
        f"Joining the playground at {dev.server} (settings from {dev.path}): webhooks on "
        f"http://127.0.0.1:{port}{called}, ledger {joined.ledger_url or 'off'}, "
        f"loop every {joined.loop_interval:g} s, leader Lease of {joined.lease_duration:g} s"
    )
    return joined, where
