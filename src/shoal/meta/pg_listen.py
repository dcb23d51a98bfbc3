"""High-watermark notifications over PostgreSQL LISTEN/NOTIFY.

Every `commit_file` of the PostgreSQL store sends, in its own transaction, one or more
`NOTIFY shoal_hwm, '<payload>'` with the new high watermark of each partition it advanced.
PostgreSQL delivers them at commit, to every connection that LISTENs on the channel, so the
long-polling fetches of other agents wake within a round trip instead of at their next poll.

Payload: a JSON array of [topic, partition, high_watermark] triples, at most PAYLOAD_MAX bytes
(PostgreSQL's limit is 8000); larger commits send several notifications. Notifications are a
hint: one lost while the listener was reconnecting is covered by the read path's own poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from shoal.meta.store import HwmCallback

CHANNEL: Final = "shoal_hwm"
PAYLOAD_MAX: Final = 7900

log = logging.getLogger(__name__)


def encode_payloads(entries: list[tuple[str, int, int]]) -> list[str]:
    """Split (topic, partition, hwm) triples into JSON payloads of at most PAYLOAD_MAX bytes.
    An entry that cannot fit alone (a topic name near 8 kB) is left out: listeners poll."""
    payloads: list[str] = []
    parts: list[str] = []
    size = 2  # the brackets
    for entry in entries:
        text = json.dumps(list(entry), separators=(",", ":"), ensure_ascii=False)
        cost = len(text.encode()) + (1 if parts else 0)
        if len(text.encode()) + 2 > PAYLOAD_MAX:
            continue
        if size + cost > PAYLOAD_MAX:
            payloads.append("[" + ",".join(parts) + "]")
            parts, size = [], 2
            cost = len(text.encode())
        parts.append(text)
        size += cost
    if parts:
        payloads.append("[" + ",".join(parts) + "]")
    return payloads


def decode_payload(payload: str) -> list[tuple[str, int, int]]:
    """Parse one payload; malformed input (another sender on the channel) yields []."""
    try:
        data = json.loads(payload)
        return [(str(t), int(p), int(h)) for t, p, h in data]
    except (ValueError, TypeError):
        return []


class HwmListener:
    """One dedicated connection that LISTENs on CHANNEL and calls the callbacks.

    Reconnects with exponential backoff (plus jitter) when the connection drops, and probes it
    every `probe_interval_s` so a half-open TCP connection is noticed too.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        probe_interval_s: float = 10.0,
        probe_timeout_s: float = 5.0,
        backoff_max_s: float = 5.0,
    ) -> None:
        self._connect = connect  # returns an awaitable of an asyncpg.Connection
        self._callbacks: list[HwmCallback] = []
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._backoff_max_s = backoff_max_s
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self.connects = 0  # successful LISTENs so far (tests and status)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def add(self, callback: HwmCallback, wait_s: float) -> None:
        """Register `callback`; starts the connection on first use and waits up to `wait_s`
        for it to listen (if it cannot, it keeps retrying in the background)."""
        self._callbacks.append(callback)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="shoal-pg-listen")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._listening.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        entries = decode_payload(str(payload))
        if not entries:
            return
        for callback in list(self._callbacks):
            try:
                callback(entries)
            except Exception:
                log.exception("high-watermark callback failed")

    async def _run(self) -> None:
        delay = 0.05
        while True:
            lost = asyncio.Event()
            try:
                conn = await self._connect()
                self._conn = conn
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._listening.set()
                self.connects += 1
                delay = 0.05
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._probe_interval_s):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=self._probe_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("high-watermark listener: %s; reconnecting in %.2fs", exc, delay)
            self._listening.clear()
            await self._drop()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._backoff_max_s)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._listening.clear()
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(self._probe_timeout_s):
                    await conn.close()
            except Exception:
                conn.terminate()
