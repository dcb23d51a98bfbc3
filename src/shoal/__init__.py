"""Shoal: a Kafka-compatible streaming system built directly on object storage."""

__version__ = "0.1.0"
