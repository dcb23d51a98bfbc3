"""Object store seam (obstore-backed: file, memory, s3, gcs, azure) + request accounting."""

from __future__ import annotations

from shoal.objstore.store import (
    OPS,
    ObjectExistsError,
    ObjectMeta,
    ObjectStore,
    ObjectStoreError,
)

__all__ = ["OPS", "ObjectExistsError", "ObjectMeta", "ObjectStore", "ObjectStoreError"]
