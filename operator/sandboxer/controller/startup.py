"""The one startup function that configures kopf, and the login that shares our credentials."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import kopf

from sandboxer.controller.config import OperatorConfig
from sandboxer.tlscerts import self_signed

PREFIX = "sandboxer.io"


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf settings from our typed OperatorConfig (kept in memo.config for every handler)."""
    config: OperatorConfig = memo.config
    # Our own prefix for kopf's finalizer and progress annotations, not kopf.zalando.org.
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # Decisions are posted explicitly as Events; kopf's own log lines only from warnings up.
    settings.posting.level = logging.WARNING
    # The API server ends each watch after server_timeout; the client gives up a bit later.
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_server_timeout + 30
    settings.watching.connect_timeout = 30
    # Unlimited workers: a limit below the number of indexed objects deadlocks startup.
    settings.queueing.worker_limit = None
    if config.webhook_port is not None:
        settings.admission.server = webhook_server(config)
        settings.admission.managed = config.webhook_managed


class ServiceWebhookServer(kopf.WebhookServer):
    """kopf's HTTPS server whose managed configurations name a Service, not a URL.

    kopf appends each handler id to `service.path`, as it does to a URL, so the API server calls
    `<service>.<namespace>.svc:443/<handler id>` (the chart's webhook Service).
    """

    def __init__(self, *, service: str, namespace: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.namespace = namespace

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            via_service = kopf.WebhookClientConfig(
                service={"name": self.service, "namespace": self.namespace, "port": 443}
            )
            if client_config.get("caBundle"):
                via_service["caBundle"] = client_config["caBundle"]
            yield via_service


def webhook_server(config: OperatorConfig) -> kopf.WebhookServer:
    if config.dev:
        # Plain HTTP for the embedded API server in the same process; never in a cluster.
        return kopf.WebhookServer(
            addr=config.webhook_addr,
            port=config.webhook_port,
            host=config.webhook_host,
            insecure=True,
        )
    if config.webhook_cert and config.webhook_key:
        certfile, pkeyfile = config.webhook_cert, config.webhook_key
    else:
        certfile, pkeyfile = self_signed(config.webhook_host)
    tls: dict[str, Any] = {
        "addr": config.webhook_addr,
        "port": config.webhook_port,
        "host": config.webhook_host,
        "certfile": certfile,
        "pkeyfile": pkeyfile,
        "cafile": config.webhook_ca or certfile,
    }
    if config.webhook_service:
        if not config.own_namespace:
            raise ValueError(
                "webhook_service needs own_namespace (SANDBOXER_NAMESPACE): the namespace of "
                "the webhook Service"
            )
        return ServiceWebhookServer(
            service=config.webhook_service, namespace=config.own_namespace, **tls
        )
    return kopf.WebhookServer(**tls)


def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf logs in with the same connection our client uses (resolved once at start)."""
    info: kopf.ConnectionInfo = memo.connection
    return info


def resolve_connection(config: OperatorConfig) -> kopf.ConnectionInfo:
    """Explicit server, else the in-cluster service account, else the kubeconfig."""
    if config.server:
        return kopf.ConnectionInfo(
            server=config.server,
            token=config.token,
            ca_data=config.ca_data,
            insecure=config.insecure or None,
            default_namespace="default",
        )
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError(
            "No Kubernetes credentials found: set KUBECONFIG (or ~/.kube/config), run in a "
            "pod with a service account, or pass an explicit server."
        )
    return info


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(registry=registry)(configure)
    kopf.on.login(registry=registry)(login)
