"""Build a metadata store from its URL (the `--metadata` flag)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from shoal.meta.sqlite import SqliteMetadataStore
from shoal.meta.store import MetadataStore

_SQLITE_OPTIONS = ("synchronous", "busy_timeout_ms")


def open_metadata_store(url: str) -> MetadataStore:
    """Return an unstarted store for `url`; the caller awaits `start()` and later `close()`.

    Accepted forms:
    - `sqlite:///abs/path.db` (also `sqlite:////abs/path.db`, as built from an absolute
      data dir), optionally with `?synchronous=normal` (tests and benchmarks only: FULL is
      what makes an acknowledged write durable) and `&busy_timeout_ms=N`;
    - `sqlite:///:memory:` or `sqlite://:memory:`: a private in-memory database (tests).
    """
    scheme, sep, _rest = url.partition("://")
    if not sep:
        raise ValueError(f"metadata URL {url!r} has no scheme; expected sqlite:///path.db")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(url)
    if scheme in ("postgresql", "postgres"):
        raise ValueError("PostgreSQL metadata stores are not supported yet; use sqlite:///path.db")
    raise ValueError(f"unsupported metadata URL scheme {scheme!r} in {url!r}; expected sqlite")


def _open_sqlite(url: str) -> SqliteMetadataStore:
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
    return SqliteMetadataStore(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
