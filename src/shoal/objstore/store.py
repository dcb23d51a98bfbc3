"""The object-store seam: every byte the agents keep lives behind this class.

It wraps `obstore` (Rust `object_store`) so the rest of Shoal sees five async calls with
timeouts, bounded retries and request accounting (Prometheus + plain counters for status pages
and tests). The cost of the system is counted in these requests, so every attempt is counted,
including retries.

Retry policy (bounded: `attempts_max` tries, exponential backoff with full jitter):
- get, get_range, delete, list are idempotent: retried on timeouts and transient errors
  (obstore's `GenericError` covers 5xx, throttling and connection failures once obstore's own
  short retry loop for remote stores gave up).
- put_create is retried on the same errors. A retry can meet its own earlier attempt that did
  reach the server ("already exists"), even on our first attempt: obstore retries a PUT by
  itself after a 5xx or a dropped connection, and the server may have stored the object before
  failing. "Already exists" is taken as success only when the stored object holds exactly our
  bytes (one GET, on this rare path only). Otherwise `ObjectExistsError` is raised and the
  stored object is left as it is.
- A missing object raises the builtin `FileNotFoundError` at once (never retried). `delete` of a
  missing object succeeds, so garbage collection can be repeated safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import obstore
from obstore.exceptions import AlreadyExistsError, GenericError, JoinError
from obstore.store import LocalStore, MemoryStore
from obstore.store import from_url as obstore_from_url

from shoal import metrics
from shoal.objstore import local_files

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig
    from obstore.store import ObjectStore as ObstoreStore

T = TypeVar("T")

OPS = ("get", "put", "delete", "list")

# ClientConfig keys of obstore: query parameters with these names configure the HTTP client,
# every other parameter configures the store (endpoint, region, credentials, ...).
_CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "timeout",
        "user_agent",
    }
)
_TRUE = frozenset({"1", "true", "yes", "on"})


class ObjectStoreError(Exception):
    """An object-store request failed after its retries."""


class ObjectExistsError(ObjectStoreError):
    """A create-only put found the key already taken (by other bytes)."""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    key: str
    size: int
    last_modified: datetime


class ObjectStore:
    def __init__(
        self,
        inner: ObstoreStore,
        *,
        url: str,
        local_root: str | None = None,
        timeout_ms: int,
        attempts_max: int = 4,
        backoff_initial_ms: int = 50,
        backoff_max_ms: int = 2_000,
    ) -> None:
        self._inner = inner
        # A local folder takes puts through local_files (synced before they return).
        self._local_root = local_root
        self._lists_in_order = not isinstance(inner, LocalStore | MemoryStore)
        self.url = url
        self.timeout_ms = timeout_ms
        self.attempts_max = max(1, attempts_max)
        self.backoff_initial_ms = backoff_initial_ms
        self.backoff_max_ms = backoff_max_ms
        # Plain counters for /v1/status and tests; attempts are counted, not logical calls.
        self.counts: dict[str, int] = dict.fromkeys(OPS, 0)
        self.bytes: dict[str, int] = dict.fromkeys(OPS, 0)
        self.errors: dict[str, int] = dict.fromkeys(OPS, 0)
        self.cause = "other"

    def for_cause(self, cause: str) -> ObjectStore:
        """The same store, its requests counted under `cause` in the metrics (what each
        request costs is then known by what it was for). Shares the connection and the plain
        counters of /v1/status."""
        if cause not in metrics.OBJECT_STORE_CAUSES:
            raise ValueError(f"unknown object-store request cause {cause!r}")
        twin = copy.copy(self)
        twin.cause = cause
        return twin

    def status(self) -> dict[str, Any]:
        """The `object_store` section of `/v1/status`: the URL and requests by operation."""
        return {"url": self.url, "requests": dict(self.counts)}

    @classmethod
    def from_url(cls, url: str, timeout_ms: int) -> ObjectStore:
        """`file:///abs/dir`, `memory://`, or any obstore URL (`s3://bucket/prefix?endpoint=
        http://host:port&region=r&access_key_id=..&secret_access_key=..`, `gs://`, `az://`)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        inner: ObstoreStore
        local_root: str | None = None
        if scheme == "memory":
            inner = MemoryStore()
        elif scheme == "file":
            path = parts.path
            if parts.netloc not in ("", "localhost") or not path.startswith("/"):
                raise ValueError(f"file:// URL needs an absolute path: {url!r}")
            os.makedirs(path, exist_ok=True)
            inner = LocalStore(path, mkdir=True)
            local_root = path
        else:
            inner = _remote_store(url, timeout_ms)
        return cls(inner, url=url, timeout_ms=timeout_ms, local_root=local_root)

    # -- public API -------------------------------------------------------------------------
    async def put_create(self, key: str, data: bytes | memoryview) -> None:
        """Write `key` once. Raises ObjectExistsError if it already holds other bytes."""
        size = len(data)
        local_root = self._local_root

        async def call() -> None:
            if local_root is None:
                await obstore.put_async(self._inner, key, data, mode="create")
                return
            try:
                await asyncio.to_thread(local_files.put_create, local_root, key, data)
            except FileExistsError as exc:
                raise AlreadyExistsError(str(exc)) from exc

        attempt = 0
        while True:
            attempt += 1
            try:
                await self._timed("put", call, size)
                return
            except AlreadyExistsError as exc:
                if await self._holds(key, data):
                    return
                raise ObjectExistsError(f"object {key!r} already exists") from exc
            except Exception as exc:
                if not _transient(exc) or attempt >= self.attempts_max:
                    raise _wrap(exc) from exc
            await self._backoff(attempt)

    async def get(self, key: str) -> bytes:
        async def call() -> bytes:
            result = await obstore.get_async(self._inner, key)
            return bytes(await result.bytes_async())

        return await self._retrying("get", call)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of `key`; shorter if the object ends before `end`."""
        if end <= start:
            return b""

        async def call() -> bytes:
            return bytes(await obstore.get_range_async(self._inner, key, start=start, end=end))

        return await self._retrying("get", call)

    async def head(self, key: str) -> ObjectMeta:
        """Counted as a `get` (object stores bill HEAD in the GET class)."""

        async def call() -> ObjectMeta:
            meta = await obstore.head_async(self._inner, key)
            return ObjectMeta(meta["path"], meta["size"], meta["last_modified"])

        return await self._retrying("get", call, count_bytes=False)

    async def delete(self, key: str) -> None:
        async def call() -> None:
            with contextlib.suppress(FileNotFoundError):
                await obstore.delete_async(self._inner, key)

        await self._retrying("delete", call)

    async def list(
        self, prefix: str, limit: int = 100_000, start_after: str | None = None
    ) -> list[ObjectMeta]:
        """Objects under `prefix` (path-segment prefix, recursive), at most `limit` of them,
        in key order; with `start_after`, only keys greater than it (to page through a large
        prefix across calls).

        One obstore list stream may issue several LIST requests (1000 keys each on S3); it is
        counted as one request per attempt here. Remote stores list in key order; local
        folders and memory do not, so there the whole prefix is read and sorted (cheap there,
        and paging with `start_after` stays correct)."""
        ordered = self._lists_in_order

        async def call() -> list[ObjectMeta]:
            out: list[ObjectMeta] = []
            stream = obstore.list(
                self._inner, prefix or None, offset=start_after or None, chunk_size=1000
            )
            async for chunk in stream:
                for meta in chunk:
                    out.append(ObjectMeta(meta["path"], meta["size"], meta["last_modified"]))
                    if ordered and len(out) >= limit:
                        return out
            if not ordered:
                out.sort(key=lambda m: m.key)
                del out[limit:]
            return out

        return await self._retrying("list", call, count_bytes=False)

    # -- internals --------------------------------------------------------------------------
    async def _holds(self, key: str, data: bytes | memoryview) -> bool:
        try:
            stored = await self.get(key)
        except FileNotFoundError:
            return False
        return len(stored) == len(data) and stored == data

    async def _retrying(
        self, op: str, call: Callable[[], Awaitable[T]], *, count_bytes: bool = True
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self._timed(op, call, None)
            except FileNotFoundError:
                raise
            except Exception as exc:
                if not _transient(exc) or attempt >= self.attempts_max:
                    raise _wrap(exc) from exc
                await self._backoff(attempt)
                continue
            if count_bytes and isinstance(result, bytes):
                self.bytes[op] += len(result)
                metrics.OBJECT_STORE_BYTES.labels(op=op, cause=self.cause).inc(len(result))
            return result

    async def _timed(self, op: str, call: Callable[[], Awaitable[T]], sent: int | None) -> T:
        self.counts[op] += 1
        metrics.OBJECT_STORE_REQUESTS.labels(op=op, cause=self.cause).inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_ms / 1000):
                result = await call()
        except FileNotFoundError:
            # A miss is an answer, not a failure of the store.
            raise
        except Exception:
            self.errors[op] += 1
            metrics.OBJECT_STORE_ERRORS.labels(op=op).inc()
            raise
        finally:
            metrics.OBJECT_STORE_LATENCY.labels(op=op).observe(time.perf_counter() - started)
        if sent is not None:
            self.bytes[op] += sent
            metrics.OBJECT_STORE_BYTES.labels(op=op, cause=self.cause).inc(sent)
        return result

    async def _backoff(self, attempt: int) -> None:
        cap = min(self.backoff_max_ms, self.backoff_initial_ms * (2 ** (attempt - 1)))
        await asyncio.sleep(random.uniform(0, cap) / 1000)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError | GenericError | JoinError | ConnectionError)


def _wrap(exc: Exception) -> Exception:
    if isinstance(exc, TimeoutError | ObjectStoreError):
        return exc
    return ObjectStoreError(f"{type(exc).__name__}: {exc}")


def _remote_store(url: str, timeout_ms: int) -> ObstoreStore:
    parts = urlsplit(url)
    config: dict[str, Any] = {}
    client: dict[str, Any] = {"timeout": timedelta(milliseconds=timeout_ms)}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        key = name.lower()
        if key in _CLIENT_KEYS:
            client[key] = value.lower() in _TRUE if key.startswith("allow_") else value
        elif key in {"skip_signature", "virtual_hosted_style_request", "unsigned_payload"}:
            config[key] = value.lower() in _TRUE
        else:
            config[key] = value
    endpoint = config.get("endpoint")
    if isinstance(endpoint, str) and endpoint.startswith("http://"):
        client.setdefault("allow_http", True)
    # obstore retries 5xx and connection errors itself; keep that loop short so our own bounded
    # retries (which are counted) stay the main policy.
    retry: RetryConfig = {
        "max_retries": 2,
        "retry_timeout": timedelta(milliseconds=timeout_ms),
        "backoff": {
            "init_backoff": timedelta(milliseconds=50),
            "max_backoff": timedelta(seconds=1),
            "base": 2,
        },
    }
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    client_options: ClientConfig = client  # type: ignore[assignment]
    return obstore_from_url(
        bare,
        config=config or None,  # type: ignore[arg-type]
        client_options=client_options,
        retry_config=retry,
    )
