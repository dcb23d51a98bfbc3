"""The loop every background job runs: one cycle per interval until stopped, a failed cycle
logged and counted (a store outage must not end the job; the next cycle tries again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicTask:
    def __init__(
        self,
        name: str,
        interval_ms: int,
        cycle: Callable[[], Awaitable[None]],
        on_error: Callable[[], None],
    ) -> None:
        self.name = name
        self.interval_ms = interval_ms
        self._cycle = cycle
        self._on_error = on_error
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # The flag as well as the cancel: on Python 3.11 `asyncio.wait_for` (used by every
        # object-store call) can swallow a cancel that lands as its inner call completes, and
        # the loop would then run on; it checks the flag after every step.
        self._stopping = True
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our caller is being cancelled too

    async def _loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval_ms / 1000)
            if self._stopping:
                return
            try:
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s cycle failed", self.name)
                self._on_error()
