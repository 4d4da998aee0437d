"""Ledger storage on a directory: layout, byte-identical rewrites, revisions, watermark, state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandboxer.ledger.rows import encode_rows
from sandboxer.ledger.store import (
    DirectoryLedgerStore,
    HourFile,
    open_store,
    parse_hour_key,
)
from sandboxer.storage import StorageError, open_blobstore
from sandboxer.storage.directory import DirectoryBlobStore
from tests.usage_samples import NOV, usage_row

HOUR = NOV + timedelta(days=25, hours=14)


def test_write_hour_uses_a_deterministic_path_and_canonical_bytes(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    rows = [usage_row(HOUR, "b"), usage_row(HOUR, "a", owner="bob")]
    key = store.write_hour(HOUR, rows)
    assert key == "hours/2026-11-26/14.r0.jsonl"
    first = (tmp_path / key).read_bytes()
    assert first == encode_rows(rows)
    store.write_hour(HOUR, list(reversed(rows)))  # same rows, other order: same bytes
    assert (tmp_path / key).read_bytes() == first
    assert [p.name for p in (tmp_path / "hours/2026-11-26").iterdir()] == ["14.r0.jsonl"]


def test_read_rows_returns_every_revision_in_range(tmp_path: Path) -> None:
    store = DirectoryLedgerStore(tmp_path)
    store.write_hour(HOUR, [usage_row(HOUR, "a")])
    store.write_hour(HOUR, [usage_row(HOUR, "a", allocated=0.25, revision=1)], revision=1)
    later = HOUR + timedelta(hours=1)
    store.write_hour(later, [usage_row(later, "a")])
    rows = list(store.read_rows(HOUR, later))
    assert [(r.revision, r.allocated_gpu_hours) for r in rows] == [(0, 1.0), (1, 0.25)]
    assert len(list(store.read_rows(HOUR, later + timedelta(hours=1)))) == 3
    assert [e.key for e in store.list_hours(start=later)] == ["hours/2026-11-26/15.r0.jsonl"]


def test_list_hours_orders_by_hour_then_revision(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    for revision in (2, 0, 1):
        rows = [usage_row(HOUR, "a", revision=revision)]
        store.write_hour(HOUR, rows, revision=revision)
    store.write_hour(HOUR - timedelta(hours=1), [])
    listed = store.list_hours()
    assert [(e.hour.hour, e.revision) for e in listed] == [(13, 0), (14, 0), (14, 1), (14, 2)]


def test_write_hour_refuses_rows_of_another_hour_or_revision(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    with pytest.raises(ValueError, match="not hour"):
        store.write_hour(HOUR, [usage_row(HOUR + timedelta(hours=1))])
    with pytest.raises(ValueError, match="revision 0, not hour"):
        store.write_hour(HOUR, [usage_row(HOUR)], revision=1)
    with pytest.raises(ValueError, match="not the start of an hour"):
        store.write_hour(HOUR + timedelta(minutes=5), [])
    with pytest.raises(ValueError, match="no timezone"):
        store.write_hour(datetime(2026, 11, 26, 14), [])


def test_watermark_round_trips_and_never_moves_back(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert store.get_watermark() is None
    store.set_watermark(HOUR)
    assert store.get_watermark() == HOUR
    assert (tmp_path / "watermark.json").read_text() == '{"watermark": "2026-11-26T14:00:00Z"}\n'
    with pytest.raises(ValueError, match="cannot move back"):
        store.set_watermark(HOUR - timedelta(hours=1))


def test_state_blobs_persist_and_names_are_checked(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert store.get_state("cursors") is None
    store.put_state("cursors", b'{"node-a": 3}')
    assert open_store(str(tmp_path)).get_state("cursors") == b'{"node-a": 3}'
    with pytest.raises(ValueError, match="invalid ledger state name"):
        store.put_state("../escape", b"")


def test_hour_keys_parse_back() -> None:
    assert parse_hour_key("hours/2026-11-26/14.r3.jsonl") == HourFile(
        datetime(2026, 11, 26, 14, tzinfo=UTC), 3, "hours/2026-11-26/14.r3.jsonl"
    )
    assert parse_hour_key("hours/2026-11-26/notes.txt") is None


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    blobs = DirectoryBlobStore(tmp_path)
    blobs.put_bytes("a/b.txt", b"old")
    with pytest.raises(StorageError, match="cannot write"):
        blobs.put_file("a/b.txt", tmp_path / "does-not-exist")
    assert blobs.get_bytes("a/b.txt") == b"old"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt"]
    assert blobs.list_keys() == ["a/b.txt"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket/x", "unsupported storage URL"),
        ("s3:///prefix", "expected s3://bucket/prefix"),
        ("file://host/x", "expected file:///absolute/path"),
        ("", "empty storage location"),
    ],
)
def test_bad_storage_urls_say_what_to_use(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_blobstore(url)


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    blobs = DirectoryBlobStore(tmp_path / "root")
    for key in ("../x", "/abs", "a//b", "a/.tmp-x"):
        with pytest.raises(ValueError, match="invalid storage key"):
            blobs.put_bytes(key, b"")
