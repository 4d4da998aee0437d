"""S3 (and S3-compatible) blob store. The only module that imports boto3.

Credentials come from boto3's standard chain (environment, shared config, web identity / IRSA,
instance metadata); nothing here reads or logs them. An S3 object becomes visible only when its
PUT, or the CompleteMultipartUpload of a multipart upload, succeeds, so every final key is written
in one atomic step and a failed upload leaves no object behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandboxer.storage.blobs import StorageError, check_key

MiB = 1 << 20


class S3Options(BaseSettings):
    """S3 client options; each can be set by environment, e.g. SANDBOXER_S3_ENDPOINT_URL."""

    model_config = SettingsConfigDict(env_prefix="SANDBOXER_S3_", extra="ignore")

    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, Ceph, moto); default AWS."
    )
    region: str | None = Field(default=None, description="Region; default from the AWS chain.")
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    sse: Literal["AES256", "aws:kms"] | None = Field(
        default=None, description="Server-side encryption for every object written."
    )
    kms_key_id: str | None = Field(default=None, description="KMS key for sse=aws:kms.")
    multipart_threshold: int = Field(default=64 * MiB, ge=5 * MiB)
    multipart_chunksize: int = Field(default=16 * MiB, ge=5 * MiB)

    @model_validator(mode="after")
    def _kms_needs_sse(self) -> S3Options:
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError("kms_key_id is set but sse is not 'aws:kms'; set sse=aws:kms")
        return self

    def extra_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str, options: S3Options) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.options = options
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=options.endpoint_url,
            region_name=options.region,
            config=Config(
                s3={"addressing_style": options.addressing_style},
                retries={"mode": "standard", "max_attempts": 5},
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunksize,
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, action: str, key: str, exc: Exception) -> StorageError:
        detail = str(exc)
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            detail = f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
        return StorageError(
            f"cannot {action} s3://{self.bucket}/{key}: {detail} "
            "(check the bucket, the endpoint URL and the credentials in the AWS chain)"
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, **self.options.extra_args()
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("write", full, exc) from exc

    def put_file(self, key: str, path: Path) -> None:
        """Upload a file (multipart above the threshold); the key appears only at the end."""
        full = self._key(key)
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                full,
                ExtraArgs=self.options.extra_args() or None,
                Config=self._transfer,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("write", full, exc) from exc

    def get_bytes(self, key: str) -> bytes | None:
        full = self._key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail("read", full, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read", full, exc) from exc
        return body

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", self.prefix + prefix, exc) from exc
        return sorted(k for k in keys if ".tmp-" not in k)

    def delete(self, key: str) -> None:
        full = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", full, exc) from exc
