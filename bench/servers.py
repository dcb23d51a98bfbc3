"""Storage servers for the benchmark's production backend: SeaweedFS (S3) and PostgreSQL.

The server-starting code is the test suite's (`tests/s3_server.py`, `tests/pg_server.py`), so
the bench measures on exactly what the tests run against. Both brokers of one run share the one
SeaweedFS: Shoal under its own prefix of bucket `shoal`, Tansu in bucket `tansu`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.pg_server import PgServer  # noqa: E402
from tests.s3_server import REGION, S3Server, _http, start_seaweedfs  # noqa: E402

BACKENDS = ("embedded", "seaweedfs-pg")
TANSU_BUCKET = "tansu"


@dataclass
class Backend:
    """What the brokers are started with: nothing extra for `embedded`."""

    name: str = "embedded"
    s3: S3Server | None = None
    pg: PgServer | None = None
    notes: list[str] = field(default_factory=list)

    def shoal_args(self) -> list[str]:
        if self.s3 is None or self.pg is None:
            return []
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        return ["--bucket", self.s3.url(prefix), "--metadata", self.pg.url]

    def shoal_env(self) -> dict[str, str]:
        return self.s3.env() if self.s3 is not None else {}

    def tansu_storage(self) -> str:
        return f"s3://{TANSU_BUCKET}/" if self.s3 is not None else "memory://tansu/"

    def tansu_env(self) -> dict[str, str]:
        """Tansu's s3:// engine (Rust object_store) reads the standard AWS variables."""
        if self.s3 is None:
            return {}
        return {
            **self.s3.env(),
            "AWS_REGION": REGION,
            "AWS_ENDPOINT": self.s3.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def label(self, broker: str) -> str:
        if self.s3 is None:
            return broker
        return f"{broker} s3+pg" if broker == "shoal" else f"{broker} s3"


@contextlib.contextmanager
def backend(name: str, workdir: Path) -> Iterator[Backend]:
    """Start the servers of backend `name` under `workdir`; stop them on exit."""
    if name == "embedded":
        yield Backend()
        return
    if name != "seaweedfs-pg":
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    # `weed` turns on S3 authentication when it finds AWS keys in its environment, and the
    # anonymous readiness check of the helper then never passes: start it without them.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        s3 = start_seaweedfs(workdir / "s3")
    finally:
        os.environ.update(saved)
    try:
        status = _http("PUT", f"{s3.endpoint}/{TANSU_BUCKET}")
        if status not in (200, 409):
            raise RuntimeError(f"seaweedfs: creating bucket {TANSU_BUCKET!r} answered {status}")
        # Durable: the commit rate is part of what is measured.
        pg = PgServer(durable=True).start()
        try:
            yield Backend(
                name, s3, pg, [f"seaweedfs {s3.endpoint}", f"postgresql {pg.url} (fsync on)"]
            )
        finally:
            pg.destroy()
    finally:
        s3.stop()
