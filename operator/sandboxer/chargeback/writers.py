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
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sandboxer.chargeback.settings import ExportSettings

FORMATS = {"parquet": "part-00000.parquet", "csv": "part-00000.csv.gz"}
# Rows per CSV write: the text does not depend on it, the memory held while writing does.
_CSV_BATCH_ROWS = 4_096


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


def csv_ready(table: pa.Table) -> pa.Table:
    """Timestamps as `2026-11-26T14:00:00Z`, the ISO 8601 form FOCUS and spreadsheets expect."""
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            seconds = pc.cast(column, pa.timestamp("s", tz="UTC"))  # %S alone, no fraction
            column = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


class DataFileWriter:
    """Writes FOCUS tables, batch after batch, into `folder` in each requested format.

    The files are those one write of all the batches concatenated would give, provided each
    batch but the last holds exactly `settings.parquet_row_group_size` rows in one chunk per
    column: every batch becomes one Parquet row group, and the CSV text does not depend on how
    rows are batched. Close it (or leave the `with` block) to finish the files.
    """

    def __init__(
        self, folder: Path, formats: set[str], schema: pa.Schema, settings: ExportSettings
    ) -> None:
        unknown = formats - FORMATS.keys()
        if unknown or not formats:
            raise ValueError(f"unknown export format(s) {sorted(unknown)}: use parquet and/or csv")
        self._folder = folder
        self._formats = sorted(formats, key=list(FORMATS).index)
        self._schema = schema
        self._row_group_size = settings.parquet_row_group_size
        self._rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pa_csv.CSVWriter | None = None
        self._gzip: gzip.GzipFile | None = None
        self._raw: BinaryIO | None = None
        try:
            if "parquet" in formats:
                self._parquet = pq.ParquetWriter(
                    folder / FORMATS["parquet"],
                    schema,
                    version="2.6",
                    compression=settings.parquet_compression,
                    use_dictionary=True,
                    write_statistics=True,
                    data_page_version="1.0",
                )
            if "csv" in formats:
                self._raw = (folder / FORMATS["csv"]).open("wb")
                self._gzip = gzip.GzipFile(
                    filename="",
                    mode="wb",
                    fileobj=self._raw,
                    compresslevel=settings.csv_gzip_level,
                    mtime=0,
                )
                self._csv = pa_csv.CSVWriter(
                    self._gzip,
                    csv_ready(schema.empty_table()).schema,
                    write_options=pa_csv.WriteOptions(
                        quoting_style="needed", batch_size=_CSV_BATCH_ROWS
                    ),
                )
        except BaseException:
            self._close_files()
            raise

    def write(self, table: pa.Table) -> None:
        if self._parquet is not None:
            self._parquet.write_table(table, row_group_size=self._row_group_size)
        if self._csv is not None:
            for offset in range(0, table.num_rows, _CSV_BATCH_ROWS):
                batch = csv_ready(table.slice(offset, _CSV_BATCH_ROWS))
                if offset + _CSV_BATCH_ROWS >= table.num_rows:
                    # Arrow's CSV writer keeps the columns of the last batch it wrote; a copy of
                    # this short slice, not a view of the whole row group, is what it then keeps.
                    batch = pa.table(
                        [pa.concat_arrays(c.chunks) for c in batch.columns], schema=batch.schema
                    )
                self._csv.write_table(batch)
        self._rows += table.num_rows

    def _close_files(self) -> None:
        for closable in (self._parquet, self._csv, self._gzip, self._raw):
            if closable is not None:
                closable.close()
        self._parquet = self._csv = self._gzip = self._raw = None

    def close(self) -> list[WrittenFile]:
        """Finish the files; returns them in a fixed order."""
        if self._parquet is not None and self._rows == 0:
            self._parquet.write_table(self._schema.empty_table())  # as a write of no rows does
        self._close_files()
        written = []
        for fmt in self._formats:
            size, sha = file_digest(self._folder / FORMATS[fmt])
            written.append(WrittenFile(FORMATS[fmt], fmt, self._rows, size, sha))
        return written

    def __enter__(self) -> DataFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_files()
