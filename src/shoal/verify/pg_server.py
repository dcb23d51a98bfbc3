"""A throwaway PostgreSQL server: `initdb` + `pg_ctl` under a temp dir. The metadata store of
`shoal verify --playground --metadata postgres`, and of the tests and benchmarks
(`tests/pg_server.py` re-exports this module).

PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and run
as the `postgres` system user. If the binaries are missing and we are root on a Debian-like
machine, `apt-get install -y postgresql` is run (and printed) once.

The tests use an existing server instead when SHOAL_TEST_PG_URL=postgresql://user@host:port/db
is set (the user needs CREATEDB: every test gets its own database).

    python -m shoal.verify.pg_server   # start one, print its URL, stop it on Ctrl-C / SIGTERM
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType, TracebackType

from shoal.common.ports import free_port

_INSTALL_CMD = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
_START_TIMEOUT_S = 60


class PgUnavailable(RuntimeError):
    """No PostgreSQL binaries here and they cannot be installed."""


def find_bin_dir(install: bool = True) -> Path:
    """Directory holding initdb/pg_ctl/postgres; installs the Debian package if allowed."""
    for candidate in _candidates():
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"pg_server: PostgreSQL not found; running: {' '.join(_INSTALL_CMD)}",
              file=sys.stderr, flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        done = subprocess.run(_INSTALL_CMD, env=env, check=False)
        if done.returncode != 0:
            print("pg_server: retrying after apt-get update", file=sys.stderr, flush=True)
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(_INSTALL_CMD, env=env, check=False)
        return find_bin_dir(install=False)
    raise PgUnavailable(
        "PostgreSQL binaries (initdb, pg_ctl) not found; install them with "
        "`apt-get install -y postgresql` (tests: or set SHOAL_TEST_PG_URL)"
    )


def _candidates() -> list[Path]:
    found: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(os.path.realpath(initdb)).parent)
    # Debian keeps the binaries off PATH, one directory per major version: newest first.
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    found.extend(Path(p) for p in versions)
    return found


class PgServer:
    """One PostgreSQL cluster in a temp dir, listening on 127.0.0.1:<free port>.

    `durable=False` (the default for tests) turns fsync off: a throwaway cluster does not need
    to survive power loss, and CREATE DATABASE per test gets much cheaper. Benchmarks that
    report commit rates use `durable=True`.
    """

    def __init__(self, *, durable: bool = False, max_connections: int = 300) -> None:
        self.durable = durable
        self.max_connections = max_connections
        self.port = 0
        self.root: Path | None = None
        self._bin: Path | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def start(self) -> PgServer:
        """Create the cluster (first call) and start the server; waits until it accepts."""
        if self.root is None:
            self._bin = find_bin_dir()
            self._user = "postgres" if os.geteuid() == 0 else None
            # Not pytest's tmp_path: its parents are 0700 root, unreadable for `postgres`.
            self.root = Path(tempfile.mkdtemp(prefix="shoal-pg-"))
            if self._user is not None:
                entry = pwd.getpwnam(self._user)
                os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            )
            self.port = free_port()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            f"-c max_connections={self.max_connections}",
            "-c shared_buffers=128MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl", "start", "-w", "-t", str(_START_TIMEOUT_S), "-D", str(self.data_dir),
            "-l", str(self.root / "server.log"), "-o", " ".join(options),
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (start() brings it back on the same port)."""
        if self.root is not None and (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def destroy(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            self.stop("immediate")
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def log_tail(self, lines: int = 40) -> str:
        if self.root is None or not (self.root / "server.log").exists():
            return ""
        text = (self.root / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _run(self, tool: str, *args: str) -> None:
        assert self._bin is not None
        done = subprocess.run(
            [str(self._bin / tool), *args],
            user=self._user,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S + 30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{self.log_tail()}"
            )

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


def main() -> None:
    durable = "--durable" in sys.argv[1:]
    server = PgServer(durable=durable).start()
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(server.url, flush=True)
    try:
        while not stopping:
            time.sleep(0.2)
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
