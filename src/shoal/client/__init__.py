"""A small asyncio Kafka client on kio, for tools that talk to any Kafka-compatible cluster.

Layering: depends on `shoal.protocol` and kio only, never on agent internals.
"""

from __future__ import annotations

from shoal.client.admin import (
    EARLIEST,
    LATEST,
    TP,
    Admin,
    Broker,
    ClusterMetadata,
    Committed,
    GroupDescription,
    GroupListing,
    KafkaApiError,
    ListedOffset,
    MemberDescription,
    TopicMetadata,
)
from shoal.client.connection import (
    ClientError,
    ConnectError,
    ConnectionClosed,
    KafkaConnection,
    ProtocolViolation,
    RequestTimeout,
    UnsupportedApi,
)

__all__ = [
    "EARLIEST",
    "LATEST",
    "TP",
    "Admin",
    "Broker",
    "ClientError",
    "ClusterMetadata",
    "Committed",
    "ConnectError",
    "ConnectionClosed",
    "GroupDescription",
    "GroupListing",
    "KafkaApiError",
    "KafkaConnection",
    "ListedOffset",
    "MemberDescription",
    "ProtocolViolation",
    "RequestTimeout",
    "TopicMetadata",
    "UnsupportedApi",
]
