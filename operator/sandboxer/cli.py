"""The `sandboxer` command line: operator, agent, dev, demo, crds, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

app = typer.Typer(
    name="sandboxer",
    help="Self-service GPU sandboxes on Kubernetes, metered against budgets.",
    no_args_is_help=True,
    add_completion=False,
)


def _not_yet(what: str, issue: int) -> NoReturn:
    typer.echo(
        f"sandboxer {what} is not available in this build yet (tracked as issue #{issue}).",
        err=True,
    )
    raise typer.Exit(code=2)


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
def operator() -> None:
    """Run the operator against the current kubeconfig (or in-cluster config)."""
    _not_yet("operator", 4)


@app.command()
def agent() -> None:
    """Run the node metering agent (NVML + kubelet PodResources)."""
    _not_yet("agent", 5)


@app.command()
def dev(
    kubeconfig: Annotated[Path, typer.Option(help="Where to write the playground kubeconfig.")],
    nodes: Annotated[int, typer.Option(min=1, help="Simulated GPU nodes.")] = 2,
    gpus_per_node: Annotated[int, typer.Option(min=1, help="GPUs per simulated node.")] = 8,
    gpu_model: Annotated[str, typer.Option(help="GPU model of the simulated nodes.")] = "H100",
) -> None:
    """Playground: embedded API + operator + simulated GPU nodes, until interrupted."""
    _not_yet("dev", 3)


@app.command()
def demo() -> None:
    """Scripted run of the playground with a live table; writes ./sandboxer-demo/."""
    _not_yet("demo", 10)


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


def main() -> None:
    app()
