"""Ledger files → one Arrow table, parsed in C++ by pyarrow's JSON reader (no Python per row).

The files hold `encode_rows` JSON lines; this schema mirrors `UsageRow` (a test keeps them equal).
Unknown keys are ignored, so a newer ledger with extra fields still exports.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.json as pa_json

LEDGER_SCHEMA = pa.schema(
    [
        ("hour", pa.timestamp("s", tz="UTC")),
        ("sandbox_uid", pa.string()),
        ("sandbox", pa.string()),
        ("namespace", pa.string()),
        ("owner", pa.string()),
        ("team", pa.string()),
        ("cost_center", pa.string()),
        ("sandbox_class", pa.string()),
        ("gpu_model", pa.string()),
        ("mig_profile", pa.string()),
        ("gpus", pa.int64()),
        ("billing_weight", pa.float64()),
        ("allocated_gpu_hours", pa.float64()),
        ("busy_gpu_hours", pa.float64()),
        ("energy_kwh", pa.float64()),
        ("currency", pa.string()),
        ("list_unit_price", pa.float64()),
        ("contracted_unit_price", pa.float64()),
        ("list_cost", pa.float64()),
        ("cost", pa.float64()),
        ("sku", pa.string()),
        ("budget", pa.string()),
        ("revision", pa.int64()),
        ("charge_class", pa.string()),
        ("peak_gpu_memory_bytes", pa.int64()),
    ]
)

# Parse in ~4 MiB batches: little text held at once, and still few reader calls.
BATCH_BYTES = 4 << 20
_PARSE = pa_json.ParseOptions(explicit_schema=LEDGER_SCHEMA, unexpected_field_behavior="ignore")


def _parse(buffer: list[bytes]) -> pa.Table:
    table = pa_json.read_json(io.BytesIO(b"".join(buffer)), parse_options=_PARSE)
    return table.select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA)


def iter_ledger_tables(
    files: Iterable[bytes], batch_bytes: int | None = None
) -> Iterator[pa.Table]:
    """Parse ledger files in batches of about `batch_bytes` (default `BATCH_BYTES`), keeping
    their order (and the rows' order inside each); yields no table for no rows."""
    batch_bytes = batch_bytes or BATCH_BYTES
    buffer: list[bytes] = []
    size = 0
    for data in files:
        if not data:
            continue
        buffer.append(data if data.endswith(b"\n") else data + b"\n")
        size += len(data)
        if size >= batch_bytes:
            yield _parse(buffer)
            buffer, size = [], 0
    if buffer:
        yield _parse(buffer)


def rebatch(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows in tables of exactly `rows` rows (the last one may be shorter), each column
    one contiguous chunk, as slices of one whole-period table would be."""
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        del table
        while count >= rows:
            joined = pa.concat_tables(pending)
            pending = [joined.slice(rows)]
            count = pending[0].num_rows
            head = [joined.slice(0, rows)]
            del joined  # so that _contiguous frees each column's pieces once it has copied them
            head = [_contiguous(head.pop())]
            yield head.pop()  # nothing here holds it, nor the pieces it was cut from
    if count:
        last = pa.concat_tables(pending)
        pending.clear()
        yield _contiguous(last)


def _contiguous(table: pa.Table) -> pa.Table:
    """`table` with one chunk per column, copying one column at a time: the caller passes the
    only reference, so each column's pieces are freed as soon as its copy is made."""
    schema = table.schema
    columns = []
    while table.num_columns:
        columns.append(table.column(0).combine_chunks())
        table = table.remove_column(0)
    return pa.Table.from_arrays(columns, schema=schema)


def read_ledger_table(files: Iterable[bytes]) -> pa.Table:
    """Concatenate ledger files, keeping their order (and the rows' order inside each)."""
    tables = list(iter_ledger_tables(files))
    if not tables:
        return LEDGER_SCHEMA.empty_table()
    return pa.concat_tables(tables).combine_chunks()
