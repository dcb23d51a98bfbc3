"""A fault-injecting HTTP reverse proxy for the object store, on loopback: between the agents
of `shoal verify --playground` and their S3 server (`s3-503`, `s3-slow` faults), and in the
fault tests (`tests/fault_proxy.py` re-exports this module).

Runs aiohttp in its own thread and event loop, so synchronous tests (which drive real agent
processes and blocking Kafka clients) can change the faults at any time:

    proxy = FaultProxy(server.endpoint).start()
    agent --bucket server.url("p", endpoint=proxy.endpoint)
    proxy.set(slowdown_ratio=0.2, for_s=30)    # 503 SlowDown on ~20% of requests for 30 s
    proxy.set(error_after_success_ratio=0.3, methods={"PUT"})
    proxy.clear()
    proxy.stop()

Other processes (benchmarks) can do the same over HTTP: `GET /__faults` shows the faults and
counters, `POST /__faults` with a JSON object of `Faults` fields replaces them (a bucket can
never be named `__faults`, so the path cannot clash with S3 requests).

Faults, each applied to a request that matches `methods` and `path_contains`:
- `delay_ms`: wait before forwarding.
- `drop_ratio`: close the client's connection without an answer (request not forwarded).
- `slowdown_ratio`: answer 503 SlowDown without forwarding (S3 throttling).
- `error_after_success_ratio`: forward, then answer 500 InternalError whatever upstream said:
  the request took effect but the client thinks it failed.
- `squat_puts`: before forwarding a PUT, store other bytes under its key, as if another writer
  got there first; a create-only PUT must then fail and the squatter's bytes must stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import aiohttp
from aiohttp import web

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_BODY_BYTES_MAX = 256 * 1024 * 1024
_LOG_MAX = 20_000
_SLOWDOWN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_INTERNAL_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


@dataclass(frozen=True)
class Faults:
    delay_ms: int = 0
    drop_ratio: float = 0.0
    slowdown_ratio: float = 0.0
    error_after_success_ratio: float = 0.0
    squat_puts: bool = False
    methods: frozenset[str] | None = None  # None: every method
    path_contains: str | None = None
    until_monotonic: float | None = None  # faults end by themselves at this time

    def active(self, method: str, path: str) -> bool:
        if self.until_monotonic is not None and time.monotonic() >= self.until_monotonic:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_contains is None or self.path_contains in path

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["methods"] = sorted(self.methods) if self.methods is not None else None
        return out


@dataclass(frozen=True, slots=True)
class Logged:
    method: str
    path: str
    status: int  # what the client got; 0 for a dropped connection
    fault: str  # "", "delay", "drop", "slowdown", "error_after_success", "squat"
    upstream_status: int  # 0 when not forwarded
    if_none_match: str | None


@dataclass
class FaultProxy:
    upstream: str
    seed: int | None = None
    port: int = 0
    faults: Faults = field(default_factory=Faults)
    log: deque[Logged] = field(default_factory=lambda: deque(maxlen=_LOG_MAX))
    counts: Counter[str] = field(default_factory=Counter)
    squatted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.upstream = self.upstream.rstrip("/")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control ----------------------------------------------------------------------------
    def set(self, *, for_s: float | None = None, **changes: Any) -> Faults:
        """Replace the faults (fields not named are reset); `for_s` ends them by themselves."""
        if "methods" in changes and changes["methods"] is not None:
            changes["methods"] = frozenset(m.upper() for m in changes["methods"])
        if for_s is not None:
            changes["until_monotonic"] = time.monotonic() + for_s
        faults = replace(Faults(), **changes)
        with self._lock:
            self.faults = faults
        return faults

    def clear(self) -> None:
        with self._lock:
            self.faults = Faults()

    def entries(self, method: str | None = None, path_contains: str = "") -> list[Logged]:
        with self._lock:
            items = list(self.log)
        return [
            e
            for e in items
            if (method is None or e.method == method) and path_contains in e.path
        ]

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("fault proxy did not start")
        if self._error is not None:
            raise RuntimeError("fault proxy failed to start") from self._error
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to start(); a thread has nobody else to tell
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=120, sock_connect=10)
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, auto_decompress=False
        ) as session:
            self._session = session
            app = web.Application(client_max_size=_BODY_BYTES_MAX)
            app.router.add_route("*", "/__faults", self._control)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
            await site.start()
            server = site._server
            assert server is not None and isinstance(server, asyncio.base_events.Server)
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            try:
                await self._stopped.wait()
            finally:
                await runner.cleanup()

    # -- request handling -------------------------------------------------------------------
    async def _control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await request.json()
            if not isinstance(body, dict):
                return web.json_response({"error": "expected a JSON object"}, status=400)
            known = {f.name for f in fields(Faults)} | {"for_s"}
            unknown = set(body) - known
            if unknown:
                return web.json_response({"error": f"unknown fields {sorted(unknown)}"}, status=400)
            self.set(**body)
        with self._lock:
            state = {"faults": self.faults.to_json(), "counts": dict(self.counts)}
        return web.json_response(state)

    def _roll(self, ratio: float) -> bool:
        return ratio > 0 and self._rng.random() < ratio

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)
            self.counts["requests"] += 1
            if entry.fault:
                self.counts[entry.fault] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            faults = self.faults
        method, path = request.method, request.path
        inm = request.headers.get("If-None-Match")
        active = faults.active(method, path)
        body = await request.read()
        fault = ""
        if active and faults.delay_ms > 0:
            fault = "delay"
            await asyncio.sleep(faults.delay_ms / 1000)
        if active and self._roll(faults.drop_ratio):
            self._record(Logged(method, path, 0, "drop", 0, inm))
            transport = request.transport
            if transport is not None:
                transport.abort()
            # The connection is gone; aiohttp discards what is returned here.
            return web.Response(status=499)
        if active and self._roll(faults.slowdown_ratio):
            self._record(Logged(method, path, 503, "slowdown", 0, inm))
            return web.Response(
                status=503, body=_SLOWDOWN_XML, content_type="application/xml"
            )
        if active and faults.squat_puts and method == "PUT":
            fault = "squat"
            await self._squat(request)
        status, headers, payload = await self._forward(request, body)
        if active and self._roll(faults.error_after_success_ratio):
            self._record(Logged(method, path, 500, "error_after_success", status, inm))
            return web.Response(status=500, body=_INTERNAL_XML, content_type="application/xml")
        self._record(Logged(method, path, status, fault, status, inm))
        if method == "HEAD":
            # A HEAD answer carries the object's size in Content-Length and no body: pass the
            # header through as it is (aiohttp keeps it when no body is given).
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, headers=headers, body=payload)

    async def _squat(self, request: web.Request) -> None:
        key = request.path
        url = f"{self.upstream}{key}"
        async with self._session.put(url, data=b"squatter:" + key.encode()) as resp:
            await resp.read()
            if resp.status < 300:
                with self._lock:
                    self.squatted.append(key)

    async def _forward(
        self, request: web.Request, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        url = f"{self.upstream}{request.rel_url}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as resp:
                payload = await resp.read()
                out = {
                    k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP
                }
                if request.method == "HEAD" and "Content-Length" in resp.headers:
                    out["Content-Length"] = resp.headers["Content-Length"]
                return resp.status, out, payload
        except (aiohttp.ClientError, TimeoutError):
            return 502, {}, b""
