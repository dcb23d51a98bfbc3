"""Telling peers at once that the membership changed: `POST /v1/membership/changed` on the
agent HTTP port.

Beats alone leave agents disagreeing for up to one heartbeat interval after an agent joins or
leaves. In that window they give clients different broker lists (each lists the agents it
sees) and different leaders, and librdkafka decommissions a broker that one Metadata answer
leaves out, failing the requests it had queued there; a
consumer whose Metadata request failed that way can wait for the next periodic refresh
(5 minutes by default) before it joins its group.

So an agent that has registered tells every peer it knows before it opens its Kafka listener,
and one that has deregistered tells them before it stops accepting. A peer answers once it
has re-read the live list (`Membership.refresh`, shared by concurrent notices), so when
`announce` returns, the peers that answered route by the new view. A notice is a hint: a peer
that misses it catches up at its next beat. The body is empty; a notice costs the peer one
read of the agents table, and concurrent notices share reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

from shoal.cluster.membership import Membership
from shoal.meta.agent_store import AgentInfo
from shoal.read.peer_wire import AGENT_HEADER

PATH = "/v1/membership/changed"

log = logging.getLogger(__name__)


class MembershipNotifier:
    def __init__(self, membership: Membership, *, timeout_s: float = 1.0) -> None:
        self._membership = membership
        self._timeout_s = timeout_s
        self.received = 0
        self.sent = 0
        self.failed = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.handle)]

    def stats(self) -> dict[str, Any]:
        return {"received": self.received, "sent": self.sent, "failed": self.failed}

    async def handle(self, request: web.Request) -> web.Response:
        self.received += 1
        sender = request.headers.get(AGENT_HEADER, "?")
        ok = await self._membership.refresh()
        log.debug("membership notice from %s: refreshed=%s", sender, ok)
        return web.Response(status=204 if ok else 503)

    async def announce(self, peers: Sequence[AgentInfo]) -> int:
        """Notify `peers` (this agent is skipped) and wait for their answers, each bounded by
        the timeout; returns how many re-read the membership."""
        me = self._membership.me.agent_id
        targets = [p for p in peers if p.agent_id != me]
        if not targets:
            return 0
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, headers={AGENT_HEADER: me}) as session:
            answers = await asyncio.gather(*(self._notify(session, p) for p in targets))
        return sum(answers)

    async def _notify(self, session: aiohttp.ClientSession, peer: AgentInfo) -> bool:
        url = peer.http_base + PATH
        self.sent += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                async with session.post(url) as resp:
                    if resp.status == 204:
                        return True
                    detail = f"answered {resp.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = repr(exc)
        self.failed += 1
        # Expected for a peer that died a moment ago; its own beat covers the rest.
        log.info("membership notice to node %d (%s) failed: %s", peer.node_id, url, detail)
        return False
