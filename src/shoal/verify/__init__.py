"""`shoal verify`: a Jepsen-style queue checker, built into the product.

A workload of idempotent producers and assign-mode consumers runs against any Kafka-compatible
bootstrap (optionally a local playground this package starts, with faults injected), records a
history of what the clients saw, and a pure checker decides from that history alone whether
records were lost, duplicated, reordered or given inconsistent offsets.

Modules: `history` (what clients saw), `checker` (pure: history to verdict), `schedule` (the
fault schedule format), `workload` (confluent-kafka clients), `target` (the local playground
and its faults), `report` (table, JSON, timeline plot), `run` (the whole, driven by
`shoal.cli`). Layering: above the playground, never importing agent internals.
"""
