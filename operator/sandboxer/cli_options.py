"""Options of `sandboxer operator` and the other commands, checked and turned into settings.

The typer signatures stay in `cli.py`; what they mean lives here so the command module stays a
table of options.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

if TYPE_CHECKING:
    from sandboxer.controller.config import OperatorConfig

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
EXPORT_FORMATS = ("parquet", "csv")


def seconds(value: str) -> float:
    """A duration as seconds: Go-style ("10s", "1h30m") as the chart passes, or a plain number."""
    from sandboxer.api.types import parse_duration

    try:
        total = float(value)
    except ValueError:
        try:
            total = parse_duration(value).total_seconds()
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    if total <= 0:
        raise typer.BadParameter(f"{value!r} must be longer than zero")
    return total


def configure_logging(log_format: LogFormat, log_level: LogLevel) -> None:
    from sandboxer.observability.logging import configure

    configure(json={"auto": None, "json": True, "console": False}[log_format], level=log_level)


def cert_dir(folder: Path) -> tuple[str, str, str | None]:
    """tls.crt, tls.key and (if there) ca.crt of a mounted kubernetes.io/tls Secret."""
    cert, key, ca = folder / "tls.crt", folder / "tls.key", folder / "ca.crt"
    if not cert.is_file() or not key.is_file():
        raise typer.BadParameter(
            f"{folder} must hold tls.crt and tls.key (a kubernetes.io/tls Secret mounted whole)",
            param_hint="--webhook-cert-dir / SANDBOXER_WEBHOOK_CERT_DIR",
        )
    return str(cert), str(key), str(ca) if ca.is_file() else None


def operator_config(
    *,
    namespace: list[str] | None,
    all_namespaces: bool,
    webhook_port: int | None,
    webhook_host: str,
    webhook_cert: Path | None,
    webhook_key: Path | None,
    webhook_cert_dir: Path | None,
    webhook_managed: bool,
    webhook_service: str | None,
    dev: bool,
    peering: str | None,
    liveness: str | None,
    metrics_port: int | None,
    ledger: str | None,
    export: bool,
    export_sink: str | None,
    export_interval: float,
    export_formats: str,
    loop_interval: float | None,
    no_budget: str,
    leader_lease: str = "sandboxer-operator",
    lease_duration: float | None = None,
    jupyter_interval: float | None = None,
    telemetry_retention: float | None = None,
    log_format: LogFormat,
    log_level: LogLevel,
) -> OperatorConfig:
    """The operator's settings from its options; a bad combination is a typer.BadParameter."""
    from sandboxer.budgets.gate import no_budget_policy
    from sandboxer.controller.config import OperatorConfig
    from sandboxer.controller.leader import LeaseTimings
    from sandboxer.loop.settings import LoopSettings

    if namespace and all_namespaces:
        raise typer.BadParameter("use either --namespace or --all-namespaces, not both")
    formats = tuple(f.strip() for f in export_formats.split(",") if f.strip())
    if not formats or set(formats) - set(EXPORT_FORMATS):
        raise typer.BadParameter(
            f"{export_formats!r}: use a comma-separated list of {', '.join(EXPORT_FORMATS)}",
            param_hint="--export-formats / SANDBOXER_EXPORT_FORMATS",
        )
    cert, key, ca = (str(webhook_cert) if webhook_cert else None), None, None
    key = str(webhook_key) if webhook_key else None
    if webhook_cert_dir is not None:
        if cert or key:
            raise typer.BadParameter(
                "use either --webhook-cert-dir or --webhook-cert/--webhook-key"
            )
        cert, key, ca = cert_dir(webhook_cert_dir)
    configure_logging(log_format, log_level)
    config = OperatorConfig(
        namespaces=tuple(namespace or ()),
        webhook_port=webhook_port,
        webhook_host=webhook_host,
        webhook_managed="sandboxer.io" if webhook_managed else None,
        webhook_cert=cert,
        webhook_key=key,
        webhook_ca=ca,
        webhook_service=webhook_service,
        dev=dev,
        peering=peering is not None,
        peering_name=peering or "sandboxer",
        liveness_endpoint=liveness,
        metrics_port=metrics_port,
        ledger_url=ledger,
        export_enabled=export,
        export_sink=export_sink,
        export_interval=export_interval,
        export_formats=formats,
        loop_interval=loop_interval if loop_interval is not None else LoopSettings().interval,
        no_budget=no_budget,
        lease_name=leader_lease,
        jupyter_interval=jupyter_interval,
    )
    if lease_duration is not None:
        config.lease_duration = lease_duration
    try:
        LeaseTimings.scaled(config.lease_duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lease-duration") from exc
    if telemetry_retention is not None:
        config.telemetry_retention = telemetry_retention
    if dev:
        from sandboxer.devcluster.devsettings import join_playground

        try:
            joined = join_playground(config, webhook_port, ledger, loop_interval, lease_duration)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="KUBECONFIG") from exc
        if joined is not None:
            config, where = joined
            typer.echo(where, err=True)
    try:
        no_budget_policy(no_budget)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--no-budget / SANDBOXER_NO_BUDGET") from exc
    if webhook_service and not config.own_namespace:
        raise typer.BadParameter(
            "needs SANDBOXER_NAMESPACE, the namespace of the webhook Service",
            param_hint="--webhook-service",
        )
    return config
