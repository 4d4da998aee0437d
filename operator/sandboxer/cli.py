"""The `sandboxer` command line: operator, agent, dev, demo, crds, export, replay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandboxer.cli_options import (
    LogFormat,
    LogLevel,
    configure_logging,
    operator_config,
    seconds,
)

app = typer.Typer(
    name="sandboxer",
    help="Self-service GPU sandboxes on Kubernetes, metered against budgets.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def crds(
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory to write the CRD YAML files into.")
    ] = None,
) -> None:
    """Generate the CustomResourceDefinitions from the API models (stdout, or one file per kind)."""
    from sandboxer.api.crdgen import render_all, write_all

    if out is None:
        typer.echo(render_all(), nl=False)
    else:
        for path in write_all(out):
            typer.echo(f"Wrote {path}")


@app.command()
def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Namespace (glob) to serve; repeatable."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Serve every namespace (default).")
    ] = False,
    webhook_port: Annotated[
        int | None,
        typer.Option(envvar="SANDBOXER_WEBHOOK_PORT", help="Serve the admission webhooks here."),
    ] = None,
    webhook_host: Annotated[
        str,
        typer.Option(
            envvar="SANDBOXER_WEBHOOK_HOST",
            help="Host name the API server reaches the webhooks by.",
        ),
    ] = "localhost",
    webhook_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate for the webhooks (else self-signed).")
    ] = None,
    webhook_key: Annotated[Path | None, typer.Option(help="PEM key for --webhook-cert.")] = None,
    webhook_cert_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="SANDBOXER_WEBHOOK_CERT_DIR",
            help="Folder with tls.crt, tls.key and optionally ca.crt (a mounted TLS Secret).",
        ),
    ] = None,
    webhook_managed: Annotated[
        bool,
        typer.Option(
            envvar="SANDBOXER_WEBHOOK_MANAGED",
            help="kopf creates and patches the webhook configurations named sandboxer.io.",
        ),
    ] = True,
    webhook_service: Annotated[
        str | None,
        typer.Option(
            envvar="SANDBOXER_WEBHOOK_SERVICE",
            help="Managed configurations call this Service (port 443, in SANDBOXER_NAMESPACE) "
            "instead of https://<webhook-host>:<port>.",
        ),
    ] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Plain-HTTP webhooks for the embedded API server; with the kubeconfig of "
            "`sandboxer dev --external-operator`, join that playground (its settings are in it).",
        ),
    ] = False,
    peering: Annotated[
        str | None,
        typer.Option(help="HA: join this ClusterKopfPeering; several replicas, one active."),
    ] = None,
    liveness: Annotated[
        str | None, typer.Option(help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(envvar="SANDBOXER_METRICS_PORT", help="Serve /metrics on this port."),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(envvar="SANDBOXER_LEDGER_URL", help="Ledger: file:///dir or s3://bucket/p."),
    ] = None,
    export: Annotated[
        bool,
        typer.Option(envvar="SANDBOXER_EXPORT_ENABLED", help="Write FOCUS exports on a schedule."),
    ] = True,
    export_sink: Annotated[
        str | None,
        typer.Option(envvar="SANDBOXER_EXPORT_SINK", help="Export destination; default: ledger."),
    ] = None,
    export_interval: Annotated[
        float,
        typer.Option(
            envvar="SANDBOXER_EXPORT_INTERVAL", parser=seconds, help="How often to export (1h)."
        ),
    ] = 3600.0,
    export_formats: Annotated[
        str, typer.Option(envvar="SANDBOXER_EXPORT_FORMATS", help="Comma-separated: parquet,csv.")
    ] = "parquet,csv",
    loop_interval: Annotated[
        float | None,
        typer.Option(
            envvar="SANDBOXER_LOOP_INTERVAL", parser=seconds, help="Accounting loop pass (10s)."
        ),
    ] = None,
    leader_lease: Annotated[
        str,
        typer.Option(
            envvar="SANDBOXER_LEADER_LEASE",
            help="The Lease (in the operator's namespace) whose holder runs the accounting loop.",
        ),
    ] = "sandboxer-operator",
    lease_duration: Annotated[
        float | None,
        typer.Option(
            envvar="SANDBOXER_LEASE_DURATION",
            parser=seconds,
            help="How long a silent leader keeps the Lease (15s; the playground's: 3s).",
        ),
    ] = None,
    jupyter_interval: Annotated[
        float | None,
        typer.Option(
            envvar="SANDBOXER_JUPYTER_INTERVAL",
            parser=seconds,
            help="Between two /api/status requests to one notebook (default: the loop "
            "interval, at least 30s).",
        ),
    ] = None,
    telemetry_retention: Annotated[
        float | None,
        typer.Option(
            envvar="SANDBOXER_TELEMETRY_RETENTION",
            parser=seconds,
            help="Keep the telemetry `sandboxer replay` reads this long (2160h: 90 days).",
        ),
    ] = None,
    no_budget: Annotated[
        str,
        typer.Option(
            envvar="SANDBOXER_NO_BUDGET",
            help="Owners no ComputeBudget names: 'deny' or 'allowance:<gpu-hours>'.",
        ),
    ] = "deny",
    log_format: Annotated[
        LogFormat, typer.Option(envvar="SANDBOXER_LOG_FORMAT", help="auto: JSON unless a tty.")
    ] = "auto",
    log_level: Annotated[LogLevel, typer.Option(envvar="SANDBOXER_LOG_LEVEL")] = "INFO",
) -> None:
    """Run the operator against the current kubeconfig (or in-cluster config)."""
    import asyncio

    from sandboxer.controller.runner import run_operator

    config = operator_config(
        namespace=namespace,
        all_namespaces=all_namespaces,
        webhook_port=webhook_port,
        webhook_host=webhook_host,
        webhook_cert=webhook_cert,
        webhook_key=webhook_key,
        webhook_cert_dir=webhook_cert_dir,
        webhook_managed=webhook_managed,
        webhook_service=webhook_service,
        dev=dev,
        peering=peering,
        liveness=liveness,
        metrics_port=metrics_port,
        ledger=ledger,
        export=export,
        export_sink=export_sink,
        export_interval=export_interval,
        export_formats=export_formats,
        loop_interval=loop_interval,
        leader_lease=leader_lease,
        lease_duration=lease_duration,
        jupyter_interval=jupyter_interval,
        telemetry_retention=telemetry_retention,
        no_budget=no_budget,
        log_format=log_format,
        log_level=log_level,
    )
    asyncio.run(run_operator(config))


@app.command()
def agent(
    node_name: Annotated[
        str, typer.Option(envvar="NODE_NAME", help="This node's name (the report's name).")
    ],
    kubeconfig: Annotated[
        Path | None, typer.Option(help="Kubeconfig; default: in-cluster, then ~/.kube/config.")
    ] = None,
    podresources_socket: Annotated[
        str,
        typer.Option(envvar="SANDBOXER_PODRESOURCES_SOCKET", help="kubelet PodResources socket."),
    ] = "/var/lib/kubelet/pod-resources/kubelet.sock",
    proc_root: Annotated[
        str, typer.Option(envvar="SANDBOXER_PROC_ROOT", help="The host's /proc (needs hostPID).")
    ] = "/proc",
    sample_interval: Annotated[
        float,
        typer.Option(
            envvar="SANDBOXER_SAMPLE_INTERVAL",
            parser=seconds,
            help="Time between samples: seconds or a duration (10s).",
        ),
    ] = 10.0,
    report_interval: Annotated[
        float,
        typer.Option(
            envvar="SANDBOXER_REPORT_INTERVAL",
            parser=seconds,
            help="Time between reports: seconds or a duration (30s).",
        ),
    ] = 30.0,
    metrics_port: Annotated[
        int, typer.Option(envvar="SANDBOXER_METRICS_PORT", help="Port of /metrics and /healthz.")
    ] = 9400,
    backend: Annotated[str, typer.Option(help="GPU backend: nvml or simulated.")] = "nvml",
    sim_gpus: Annotated[int, typer.Option(min=1, help="GPUs of the simulated backend.")] = 8,
    log_format: Annotated[
        LogFormat, typer.Option(envvar="SANDBOXER_LOG_FORMAT", help="auto: JSON unless a tty.")
    ] = "auto",
    log_level: Annotated[LogLevel, typer.Option(envvar="SANDBOXER_LOG_LEVEL")] = "INFO",
) -> None:
    """Run the node metering agent (NVML + kubelet PodResources)."""
    from sandboxer.metering.main import run_agent

    configure_logging(log_format, log_level)
    try:
        run_agent(
            node=node_name,
            kubeconfig=str(kubeconfig) if kubeconfig else None,
            socket=podresources_socket,
            proc_root=proc_root,
            sample_interval=sample_interval,
            report_interval=report_interval,
            metrics_port=metrics_port,
            backend=backend,
            sim_gpus=sim_gpus,
        )
    except ValueError as exc:
        typer.echo(f"sandboxer agent: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@app.command()
def dev(
    kubeconfig: Annotated[Path, typer.Option(help="Where to write the playground kubeconfig.")],
    nodes: Annotated[int, typer.Option(min=1, help="Simulated GPU nodes.")] = 2,
    gpus_per_node: Annotated[int, typer.Option(min=1, help="GPUs per simulated node.")] = 8,
    gpu_model: Annotated[str, typer.Option(help="GPU model of the simulated nodes.")] = "H100",
    sample_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between the agents' NVML samples.")
    ] = 2.0,
    report_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between the agents' GPUNodeReports.")
    ] = 5.0,
    ledger: Annotated[Path, typer.Option(help="Ledger directory.")] = Path(".sandboxer/ledger"),
    external_operator: Annotated[
        bool,
        typer.Option(
            "--external-operator",
            help="Serve without the operator: run `KUBECONFIG=<kubeconfig> sandboxer operator "
            "--dev` yourself (sandboxes are refused until it runs).",
        ),
    ] = False,
    prometheus_targets: Annotated[
        Path | None,
        typer.Option(help="Write a Prometheus file_sd JSON of every /metrics endpoint here."),
    ] = None,
    jupyter: Annotated[
        bool,
        typer.Option(
            "--jupyter",
            help="Run a real Jupyter Server for each running notebook, at its pod's IP.",
        ),
    ] = False,
) -> None:
    """Playground: embedded API + operator + simulated GPU nodes, until interrupted."""
    import asyncio

    from sandboxer.devcluster.playground import serve

    def echo(text: str) -> None:
        typer.echo(text)

    try:
        asyncio.run(
            serve(
                kubeconfig,
                nodes,
                gpus_per_node,
                gpu_model,
                sample_interval=sample_interval,
                report_interval=report_interval,
                ledger_dir=ledger,
                external_operator=external_operator,
                echo=echo,
                prometheus_targets=prometheus_targets,
                jupyter=jupyter,
            )
        )
    except KeyboardInterrupt:
        typer.echo("Stopped the dev cluster.")


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Where the export and ledger of the demo go.")
    ] = Path("sandboxer-demo"),
    timeout: Annotated[float, typer.Option(help="Seconds each step may take.")] = 90.0,
) -> None:
    """Scripted run of the playground with a live table; writes ./sandboxer-demo/."""
    import asyncio
    import logging
    import os
    import sys

    from sandboxer.demo.story import StoryFailed, run_demo
    from sandboxer.observability.logging import configure

    configure(level="WARNING")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The story shows refusals itself; kopf's own error line for each would repeat them.
    logging.getLogger("kopf").setLevel(logging.CRITICAL)
    live = sys.stdout.isatty() and not os.environ.get("CI")
    try:
        result = asyncio.run(run_demo(out, live=live, step_timeout=timeout))
    except StoryFailed as exc:
        typer.echo(f"Demo failed: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo("")
    typer.echo(f"Demo complete: {len(result.steps)} steps checked.")
    typer.echo(f"  bob's refusal: {result.refusal}")
    export = result.export
    typer.echo(
        f"  export: {export['rows']} FOCUS rows, {export['gpu_hours']} GPU-hours, "
        f"billed {export['billed_cost']} -> {out / 'export'}"
    )


@app.command()
def export(
    period: Annotated[str, typer.Option(help="Billing period YYYY-MM (or a day YYYY-MM-DD).")],
    ledger: Annotated[
        str, typer.Option(help="Ledger location: a directory or s3://bucket/prefix.")
    ],
    sink: Annotated[
        str, typer.Option(help="Export destination: a directory or s3://bucket/prefix.")
    ],
    format: Annotated[
        str, typer.Option("--format", help="Comma-separated: parquet,csv.")
    ] = "parquet,csv",
) -> None:
    """Chargeback export of a billing period in FOCUS 1.2 format."""
    from sandboxer.chargeback.cli_export import run_export

    raise typer.Exit(code=run_export(period, ledger, sink, format, echo=typer.echo))


@app.command()
def replay(
    ledger: Annotated[
        str, typer.Option(help="Ledger location: a directory or s3://bucket/prefix.")
    ],
    idle_policy: Annotated[
        str, typer.Option(help="A SandboxClass manifest: replay its sandboxes under its idle.")
    ],
    period: Annotated[str | None, typer.Option(help="A month YYYY-MM (or YYYY-MM-DD).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Start, ISO 8601 (default: the data's).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End, ISO 8601 (default: the data's).")] = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    idle_after: Annotated[
        str | None, typer.Option(help="Sweep idle.after over these, e.g. 10m,30m,1h,2h.")
    ] = None,
    chart: Annotated[
        str | None, typer.Option(help="Also write a PNG: GPU-hours against premature reclaims.")
    ] = None,
) -> None:
    """What-if: the class's idle settings replayed on recorded telemetry, beside what happened."""
    from sandboxer.replay.cli_replay import run_replay

    code = run_replay(
        ledger, idle_policy, period=period, since=since, until=until, fmt=format,
        idle_after=idle_after, chart=chart, echo=typer.echo,
    )  # fmt: skip
    raise typer.Exit(code=code)


@app.command()
def resume(
    name: Annotated[str, typer.Argument(help="The ExperimentSandbox to resume.")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Default: the context's namespace.")
    ] = None,
    kubeconfig: Annotated[Path | None, typer.Option(help="Default: $KUBECONFIG.")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context to use.")] = None,
) -> None:
    """Resume a suspended sandbox: the same workspace comes back and idle tracking restarts.

    The same as `kubectl patch esb NAME --type merge -p '{"spec":{"suspend":false}}'`; the
    admission webhook checks the owner's budget first and says why when it refuses.
    """
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from sandboxer import GROUP, VERSION

    path = str(kubeconfig) if kubeconfig else None
    config.load_kube_config(config_file=path, context=context)  # type: ignore[no-untyped-call]
    if namespace is None:
        contexts, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
        chosen = next((c for c in contexts if c["name"] == context), active) if context else active
        namespace = chosen.get("context", {}).get("namespace") or "default"
    api = client.CustomObjectsApi()
    try:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "experimentsandboxes", name, {"spec": {"suspend": False}}
        )
    except ApiException as exc:
        detail = exc.reason
        if exc.body:
            try:
                import json

                detail = json.loads(exc.body).get("message", detail)
            except ValueError:
                pass
        typer.echo(f"Could not resume {namespace}/{name}: {detail}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"Resumed {namespace}/{name}; wait for it with: kubectl wait --for=condition=Ready "
               f"esb/{name} -n {namespace}")  # fmt: skip


def main() -> None:
    app()


if __name__ == "__main__":
    main()
