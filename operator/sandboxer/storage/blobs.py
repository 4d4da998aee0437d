"""The `BlobStore` protocol and the URL factory that picks a directory or an S3 store.

Keys are relative, '/'-separated paths ("hours/2026-11-26/14.r0.jsonl"). Every put is atomic: a
reader sees the previous object or the new one, never a partial one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

if TYPE_CHECKING:
    from sandboxer.storage.s3 import S3Options


class StorageError(RuntimeError):
    """A storage location could not be read or written; the message says which and why."""


class BlobStore(Protocol):
    @property
    def url(self) -> str: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def get_bytes(self, key: str) -> bytes | None: ...

    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted; temporary objects of unfinished writes are excluded."""
        ...

    def delete(self, key: str) -> None: ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root or hide as temporary files."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}: use a relative path like 'a/b.json'")
    if any(p.startswith(".tmp-") for p in parts):
        raise ValueError(f"invalid storage key {key!r}: '.tmp-' names are reserved")
    return key


def open_blobstore(url: str, *, s3: S3Options | None = None) -> BlobStore:
    """`s3://bucket/prefix` → S3; `file:///abs/dir` or a plain path → a local directory."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from sandboxer.storage.s3 import S3BlobStore, S3Options

        if not parsed.netloc:
            raise ValueError(f"invalid S3 URL {url!r}: expected s3://bucket/prefix")
        return S3BlobStore(parsed.netloc, parsed.path.strip("/"), s3 or S3Options())
    from sandboxer.storage.directory import DirectoryBlobStore

    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"invalid file URL {url!r}: expected file:///absolute/path")
        return DirectoryBlobStore(Path(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive, not a scheme
        raise ValueError(
            f"unsupported storage URL {url!r}: use a directory path, file:///path "
            "or s3://bucket/prefix"
        )
    if not url:
        raise ValueError("empty storage location: give a directory path or s3://bucket/prefix")
    return DirectoryBlobStore(Path(url))
