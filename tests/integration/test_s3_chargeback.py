"""Ledger and exports on S3, through moto's server over real HTTP with boto3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto.server import ThreadedMotoServer

from sandboxer.chargeback.export import export_period
from sandboxer.ledger.store import BlobLedgerStore, S3LedgerStore
from sandboxer.storage import StorageError, open_blobstore
from sandboxer.storage.s3 import MiB, S3BlobStore, S3Options
from tests.usage_samples import NOV, OCT, usage_row

BUCKET = "finance"
MANIFEST = "exports/gpu/metadata/BILLING_PERIOD=2026-11/manifest.json"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    # moto accepts any credentials; they reach boto3 through its standard environment chain.
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def options(s3_endpoint: str) -> S3Options:
    return S3Options(endpoint_url=s3_endpoint, region="us-east-1", addressing_style="path")


@pytest.fixture
def s3(options: S3Options) -> Iterator[Any]:
    client = boto3.client("s3", endpoint_url=options.endpoint_url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def ledger(s3: Any, options: S3Options) -> BlobLedgerStore:
    store = S3LedgerStore(f"s3://{BUCKET}/ledger", options)
    for i in range(4):
        hour = NOV + timedelta(hours=i)
        store.write_hour(hour, [usage_row(hour, "u1"), usage_row(hour, "u2", owner="bob")])
    store.set_watermark(NOV + timedelta(hours=4))
    return store


def _objects(s3: Any, prefix: str) -> dict[str, bytes]:
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    return {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in sorted(keys)}


def test_ledger_round_trips_on_s3(ledger: BlobLedgerStore, s3: Any) -> None:
    assert ledger.get_watermark() == NOV + timedelta(hours=4)
    assert [e.key for e in ledger.list_hours(end=NOV + timedelta(hours=2))] == [
        "hours/2026-11-01/00.r0.jsonl",
        "hours/2026-11-01/01.r0.jsonl",
    ]
    assert len(list(ledger.read_rows(NOV, NOV + timedelta(days=1)))) == 8
    before = _objects(s3, "ledger/hours/")
    ledger.write_hour(NOV, [usage_row(NOV, "u2", owner="bob"), usage_row(NOV, "u1")])
    assert _objects(s3, "ledger/hours/") == before
    ledger.put_state("cursors", b"{}")
    assert ledger.get_state("cursors") == b"{}"
    assert ledger.get_state("absent") is None


def test_export_uploads_and_reruns_identically(
    ledger: BlobLedgerStore, s3: Any, options: S3Options
) -> None:
    sink = open_blobstore(f"s3://{BUCKET}/exports/gpu", s3=options)
    # A summary where earlier versions put it, inside data/ (a crawler would read it as data).
    old = "exports/gpu/data/BILLING_PERIOD=2026-11/summary.csv"
    s3.put_object(Bucket=BUCKET, Key=old, Body=b"scope,name\n")
    result = export_period("2026-11", ledger, sink)
    first = _objects(s3, "exports/")
    assert MANIFEST in first
    assert sorted(_objects(s3, "exports/gpu/data/")) == [
        "exports/gpu/data/BILLING_PERIOD=2026-11/part-00000.csv.gz",
        "exports/gpu/data/BILLING_PERIOD=2026-11/part-00000.parquet",
    ]
    assert sorted(_objects(s3, "exports/gpu/summary/")) == [
        "exports/gpu/summary/BILLING_PERIOD=2026-11/summary.csv",
        "exports/gpu/summary/BILLING_PERIOD=2026-11/summary.png",
    ]
    assert result.rows == 8
    assert result.sink_url == f"s3://{BUCKET}/exports/gpu"
    export_period("2026-11", ledger, sink)
    assert _objects(s3, "exports/") == first


def test_interrupted_upload_leaves_no_manifest(
    ledger: BlobLedgerStore, s3: Any, options: S3Options
) -> None:
    sink = S3BlobStore(BUCKET, "exports/gpu", options)

    def fail_manifest(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith("manifest.json"):
            raise EndpointConnectionError(endpoint_url="network dropped before the manifest")

    # Fault injected at the HTTP client edge, after the data files went up.
    sink.client.meta.events.register("before-parameter-build.s3.PutObject", fail_manifest)
    with pytest.raises(StorageError, match=r"manifest\.json"):
        export_period("2026-11", ledger, sink)
    written = _objects(s3, "exports/")
    assert "exports/gpu/data/BILLING_PERIOD=2026-11/part-00000.parquet" in written
    assert MANIFEST not in written

    sink.client.meta.events.unregister("before-parameter-build.s3.PutObject", fail_manifest)
    export_period("2026-11", ledger, sink)
    assert MANIFEST in _objects(s3, "exports/")


def test_corrections_on_s3(ledger: BlobLedgerStore, s3: Any, options: S3Options) -> None:
    sink = open_blobstore(f"s3://{BUCKET}/exports/gpu", s3=options)
    ledger.write_hour(OCT, [usage_row(OCT, "u1")])
    export_period("2026-10", ledger, sink, final=True)
    october = _objects(s3, "exports/gpu/data/BILLING_PERIOD=2026-10/")
    ledger.write_hour(OCT, [usage_row(OCT, "u1", allocated=0.5, revision=1)], revision=1)
    assert export_period("2026-10", ledger, sink).rows == 1
    assert _objects(s3, "exports/gpu/data/BILLING_PERIOD=2026-10/") == october
    nov = export_period("2026-11", ledger, sink)
    assert (nov.rows, nov.correction_rows) == (9, 1)


def test_encryption_and_multipart_upload(s3: Any, options: S3Options, tmp_path: Path) -> None:
    store = S3BlobStore(
        BUCKET,
        "blobs",
        options.model_copy(
            update={"sse": "AES256", "multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB}
        ),
    )
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * MiB))
    store.put_file("big.bin", big)
    head = s3.head_object(Bucket=BUCKET, Key="blobs/big.bin")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].strip('"').endswith("-2")  # two parts: a multipart upload
    assert store.get_bytes("big.bin") == big.read_bytes()
    store.put_bytes("small.txt", b"x")
    assert s3.head_object(Bucket=BUCKET, Key="blobs/small.txt")["ServerSideEncryption"] == "AES256"
    assert store.list_keys() == ["big.bin", "small.txt"]
    store.delete("small.txt")
    assert store.get_bytes("small.txt") is None


def test_missing_bucket_is_a_clear_storage_error(options: S3Options) -> None:
    store = S3BlobStore("no-such-bucket", "x", options)
    with pytest.raises(StorageError, match=r"s3://no-such-bucket/x/a\.txt: NoSuchBucket"):
        store.put_bytes("a.txt", b"")


def test_kms_key_needs_kms_encryption() -> None:
    with pytest.raises(ValueError, match="sse is not 'aws:kms'"):
        S3Options(kms_key_id="arn:aws:kms:eu-west-1:1:key/x")


def test_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOXER_S3_ENDPOINT_URL", "http://minio.local:9000")
    assert S3Options().endpoint_url == "http://minio.local:9000"
