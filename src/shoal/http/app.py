"""The agent HTTP port: Prometheus metrics, a JSON status document assembled from the sections
the agent's components supply (`http/status.py`), and routes other parts of the agent add (the
agent-to-agent block endpoint, membership notices)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shoal.http.status import Section, document


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        sections: Sequence[tuple[str, Section]],
        extra_routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self._host = host
        self._port = port
        self._sections = list(sections)
        self._extra_routes = list(extra_routes)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/status", self._status_json)
        app.router.add_get("/", self._index)
        app.router.add_routes(self._extra_routes)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()

    def status(self) -> dict[str, Any]:
        """The `/v1/status` document: every section, in the order given."""
        return document(self._sections)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(
            text="Shoal agent. See /v1/status and /metrics.\n", content_type="text/plain"
        )
