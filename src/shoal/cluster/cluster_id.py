"""The Kafka cluster id that every agent of one cluster reports (Metadata, DescribeCluster).

Agents share nothing but their stores, so the id is derived from the metadata store's URL: the
agents of one cluster agree on it without a round trip, and it stays the same across restarts.
"""

from __future__ import annotations

import base64
import uuid


def cluster_id_for(metadata_url: str) -> str:
    """Kafka cluster ids are 22 url-safe base64 characters of a UUID; derive a stable one."""
    raw = uuid.uuid5(uuid.NAMESPACE_URL, metadata_url).bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
