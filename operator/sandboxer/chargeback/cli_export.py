"""The body of `sandboxer export`: parse options, run `export_period`, print headline numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from pydantic import ValidationError

from sandboxer.chargeback.export import ExportError, export_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.chargeback.writers import FORMATS
from sandboxer.ledger.store import open_store
from sandboxer.storage import StorageError

Echo = Callable[..., None]


def parse_formats(text: str) -> set[str]:
    formats = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = formats - FORMATS.keys()
    if unknown or not formats:
        raise ValueError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    return formats


def local_dir(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return None
    return Path(parsed.path if parsed.scheme == "file" else url)


def run_export(period: str, ledger: str, sink: str, formats: str, *, echo: Echo) -> int:
    """Returns the exit code: 0 done, 2 bad input, 1 the export failed."""
    try:
        chosen = parse_formats(formats)
        local = local_dir(ledger)
        if local is not None and not local.is_dir():
            raise ValueError(f"--ledger {ledger!r}: no such directory (is the path right?)")
        result = export_period(period, open_store(ledger), sink, chosen, ExportSettings())
    except (ValueError, ValidationError) as exc:
        echo(f"error: {exc}", err=True)
        return 2
    except (ExportError, StorageError) as exc:
        echo(f"export failed: {exc}", err=True)
        return 1
    costs = ", ".join(f"{v:,.2f} {k}" for k, v in result.billed_cost.items()) or "0.00"
    echo(f"Exported {result.period} ({'closed' if result.closed else 'open'}) to {result.sink_url}")
    echo(f"  rows: {result.rows} ({result.correction_rows} corrections)")
    echo(f"  GPU-hours: {result.gpu_hours:,.3f}   billed: {costs}")
    watermark = result.ledger_watermark.isoformat() if result.ledger_watermark else "none"
    echo(f"  ledger watermark: {watermark}")
    for key in result.files:
        echo(f"  {key}")
    echo(f"  {result.manifest_key}")
    return 0
