"""Deterministic file writers: the same table always gives the same bytes.

Parquet: fixed format version, compression, row-group size and dictionary settings; pyarrow puts
no timestamps in the footer (only `created_by`, the library version). CSV: ISO 8601 UTC times,
gzip with mtime=0 and no file name in the header.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sandboxer.chargeback.settings import ExportSettings

FORMATS = {"parquet": "part-00000.parquet", "csv": "part-00000.csv.gz"}


@dataclass(frozen=True, slots=True)
class WrittenFile:
    name: str
    format: str
    rows: int
    bytes: int
    sha256: str


def file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_parquet(table: pa.Table, path: Path, settings: ExportSettings) -> None:
    pq.write_table(
        table,
        path,
        version="2.6",
        compression=settings.parquet_compression,
        row_group_size=settings.parquet_row_group_size,
        use_dictionary=True,
        write_statistics=True,
        data_page_version="1.0",
    )


def csv_ready(table: pa.Table) -> pa.Table:
    """Timestamps as `2026-11-26T14:00:00Z`, the ISO 8601 form FOCUS and spreadsheets expect."""
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            seconds = pc.cast(column, pa.timestamp("s", tz="UTC"))  # %S alone, no fraction
            column = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write_csv_gz(table: pa.Table, path: Path, settings: ExportSettings) -> None:
    options = pa_csv.WriteOptions(quoting_style="needed", batch_size=65_536)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=settings.csv_gzip_level, mtime=0
        ) as out,
    ):
        pa_csv.write_csv(csv_ready(table), out, write_options=options)


def write_formats(
    table: pa.Table, folder: Path, formats: set[str], settings: ExportSettings
) -> list[WrittenFile]:
    """Write the table in each format into `folder`; returns the files in a fixed order."""
    unknown = formats - FORMATS.keys()
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}: use parquet and/or csv")
    written = []
    for fmt in sorted(formats, key=list(FORMATS).index):
        path = folder / FORMATS[fmt]
        if fmt == "parquet":
            write_parquet(table, path, settings)
        else:
            write_csv_gz(table, path, settings)
        size, sha = file_digest(path)
        written.append(WrittenFile(FORMATS[fmt], fmt, table.num_rows, size, sha))
    return written
