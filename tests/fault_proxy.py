"""The object-store fault proxy of the fault tests: `shoal.verify.fault_proxy` (shared with
`shoal verify`'s s3-503 and s3-slow faults), re-exported here."""

from __future__ import annotations

from shoal.verify.fault_proxy import FaultProxy, Faults, Logged

__all__ = ["FaultProxy", "Faults", "Logged"]
