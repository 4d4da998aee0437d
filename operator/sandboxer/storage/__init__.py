"""Object storage behind one small interface: a local directory or an S3 bucket prefix.

The ledger and the chargeback exporter both speak `BlobStore`; only `storage/s3.py` imports boto3.
"""

from sandboxer.storage.blobs import BlobStore, StorageError, open_blobstore

__all__ = ["BlobStore", "StorageError", "open_blobstore"]
