"""S3 servers for tests and benchmarks: the servers are `shoal.verify.s3_server` (shared with
`shoal verify --playground`), re-exported here; this module adds what only tests need
(`running`, `list_keys`, `get_object`) and `python -m tests.s3_server moto|seaweedfs [DIR]`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from shoal.verify.s3_server import (
    ACCESS_KEY,
    DEFAULT_BUCKET,
    REGION,
    SECRET_KEY,
    S3Server,
    _http,
    start_moto,
    start_seaweedfs,
    weed_binary,
)

__all__ = [
    "ACCESS_KEY",
    "DEFAULT_BUCKET",
    "REGION",
    "SECRET_KEY",
    "S3Server",
    "_http",
    "get_object",
    "list_keys",
    "running",
    "start_moto",
    "start_seaweedfs",
    "weed_binary",
]


def main() -> int:
    """`python -m tests.s3_server moto|seaweedfs [DIR]`: run one until Ctrl-C (for benchmarks
    and manual runs); prints the endpoint."""
    kind = sys.argv[1] if len(sys.argv) > 1 else "moto"
    work = Path(sys.argv[2] if len(sys.argv) > 2 else f"./.cache/{kind}").resolve()
    server = start_moto(work) if kind == "moto" else start_seaweedfs(work)
    print(f"{kind} S3 endpoint {server.endpoint} bucket {server.bucket}", flush=True)
    print(f"  --bucket '{server.url('shoal')}'", flush=True)
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        signal.sigwait(signals)
    finally:
        server.stop()
    return 0



# -- helpers for tests: look at a bucket through Shoal's own object-store layer ---------------


def list_keys(url: str, prefix: str = "segments/") -> list[str]:
    """Keys under `prefix` of the store at `url` (credentials from the environment)."""
    import asyncio

    from shoal.objstore.store import ObjectStore

    async def run() -> list[str]:
        store = ObjectStore.from_url(url, 10_000)
        return [m.key for m in await store.list(prefix)]

    return asyncio.run(run())


def get_object(url: str, key: str) -> bytes:
    import asyncio

    from shoal.objstore.store import ObjectStore

    async def run() -> bytes:
        return await ObjectStore.from_url(url, 10_000).get(key)

    return asyncio.run(run())



@contextlib.contextmanager
def running(kind: str, work_dir: Path) -> Iterator[S3Server]:
    """Start a server of `kind` ("moto" or "seaweedfs"), put its credentials in os.environ
    (agent processes inherit them), and undo both on exit."""
    server = start_moto(work_dir) if kind == "moto" else start_seaweedfs(work_dir)
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    raise SystemExit(main())
