"""Build a metadata store from its URL (the `--metadata` flag)."""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from shoal.common.clock import Clock, wall_ms
from shoal.meta.postgres import PostgresMetadataStore
from shoal.meta.sqlite import SqliteMetadataStore
from shoal.meta.store import MetadataStore

_SQLITE_OPTIONS = ("synchronous", "busy_timeout_ms")
# Options of Shoal's PostgreSQL store; any other query parameter (sslmode, ...) goes to asyncpg.
_PG_INT_OPTIONS = ("pool_min", "pool_max")
_PG_MS_OPTIONS = ("command_timeout_ms", "call_timeout_ms", "connect_timeout_ms")
_BOOLEANS = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def open_metadata_store(url: str, clock: Clock = wall_ms) -> MetadataStore:
    """Return an unstarted store for `url`; the caller awaits `start()` and later `close()`.
    `clock` stamps what the store records and decides commit deadlines (tests move it).

    Accepted forms:
    - `sqlite:///abs/path.db` (also `sqlite:////abs/path.db`, as built from an absolute
      data dir), optionally with `?synchronous=normal` (tests and benchmarks only: FULL is
      what makes an acknowledged write durable) and `&busy_timeout_ms=N`;
    - `sqlite:///:memory:` or `sqlite://:memory:`: a private in-memory database (tests);
    - `postgresql://user:password@host:port/database` (or `postgres://`), with optional
      `pool_min`, `pool_max` (connections, default 1 and 10), `command_timeout_ms` (per
      statement, default 10000), `call_timeout_ms` (per store call, default 15000),
      `connect_timeout_ms` (default 5000) and `notify=off` (no LISTEN/NOTIFY high-watermark
      hints). Other parameters (e.g. `sslmode=require`) are passed to asyncpg.
    """
    scheme, sep, _rest = url.partition("://")
    if not sep:
        raise ValueError(f"metadata URL {url!r} has no scheme; expected sqlite:///path.db")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(url, clock)
    if scheme in ("postgresql", "postgres"):
        return _open_postgres(url, clock)
    raise ValueError(
        f"unsupported metadata URL scheme {scheme!r} in {url!r}; expected sqlite or postgresql"
    )


def _open_postgres(url: str, clock: Clock) -> PostgresMetadataStore:
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _PG_INT_OPTIONS or key in _PG_MS_OPTIONS or key == "notify":
            ours[key] = value
        else:
            passed.append((key, value))
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(passed), ""))
    numbers: dict[str, int] = {}
    for key in (*_PG_INT_OPTIONS, *_PG_MS_OPTIONS):
        if key in ours:
            try:
                numbers[key] = int(ours[key])
            except ValueError:
                raise ValueError(f"metadata URL: {key} must be an integer") from None
            if numbers[key] < (0 if key == "pool_min" else 1):
                raise ValueError(f"metadata URL: {key} is out of range")
    notify = _BOOLEANS.get(ours.get("notify", "on").lower())
    if notify is None:
        raise ValueError("metadata URL: notify must be on or off")
    return PostgresMetadataStore(
        dsn,
        pool_min=numbers.get("pool_min", 1),
        pool_max=numbers.get("pool_max", max(10, numbers.get("pool_min", 1))),
        command_timeout_s=numbers.get("command_timeout_ms", 10_000) / 1000,
        call_timeout_s=numbers.get("call_timeout_ms", 15_000) / 1000,
        connect_timeout_s=numbers.get("connect_timeout_ms", 5_000) / 1000,
        notify=notify,
        clock=clock,
    )


def _open_sqlite(url: str, clock: Clock) -> SqliteMetadataStore:
    parts = urlsplit(url)
    if parts.netloc == ":memory:" or parts.path in ("/:memory:", ":memory:"):
        path = ":memory:"
    elif parts.netloc:
        raise ValueError(
            f"metadata URL {url!r}: use sqlite:///absolute/path.db (three slashes, no host)"
        )
    elif not parts.path.startswith("/") or parts.path.strip("/") == "":
        raise ValueError(f"metadata URL {url!r}: the sqlite path must be absolute")
    else:
        # Both sqlite:///abs and sqlite:////abs name /abs; POSIX would keep a leading "//".
        path = "/" + parts.path.lstrip("/")
    options = parse_qs(parts.query, strict_parsing=False)
    unknown = set(options) - set(_SQLITE_OPTIONS)
    if unknown:
        raise ValueError(f"metadata URL {url!r}: unknown options {sorted(unknown)}")
    synchronous = options.get("synchronous", ["FULL"])[-1]
    try:
        busy_timeout_ms = int(options.get("busy_timeout_ms", ["10000"])[-1])
    except ValueError:
        raise ValueError(f"metadata URL {url!r}: busy_timeout_ms must be an integer") from None
    return SqliteMetadataStore(
        path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms, clock=clock
    )
