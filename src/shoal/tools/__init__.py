"""Operator tools that talk the Kafka protocol to a cluster (`shoal groups`).

Layering: depends on `shoal.client`, `shoal.protocol` and kio, never on agent internals.
"""
