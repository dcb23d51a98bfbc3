"""The handler registry: one entry per Kafka API, with the versions this agent serves.

A handler is `async def handle(svc, ctx, request) -> response`. It receives the decoded kio
request dataclass and returns either
- a kio response dataclass of the same API and version (the server encodes it),
- `bytes`: an already-encoded response body (hot paths: Produce, Fetch), or
- `None`: no response is sent (Produce with acks=0),
or raises `CloseConnection`.
ApiVersions answers from this registry, so advertising and serving can never disagree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import Messages, responses, versions_of

if TYPE_CHECKING:
    from shoal.handlers.services import Services


@dataclass(frozen=True, slots=True)
class RequestContext:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    peer: str  # "host:port" of the client, for logs
    # One connection's writes take effect in the order they were sent, as in Kafka, although
    # the server runs pipelined requests concurrently. Produce holds it until its batches are
    # in the open segment (idempotent producers pipeline up to 5; an overtaking request would
    # look like a sequence gap); OffsetCommit holds it until stored (async commits pipeline:
    # an older commit stored last would move the group's offset backwards).
    write_turn: asyncio.Lock | None = None
    # Hands the request's bytes back to the server's budget before the answer is sent, for a
    # handler whose data another budget counts from then on (Produce, once in the write
    # buffer); otherwise they are handed back when the request is answered.
    release_request_bytes: Callable[[], None] | None = None
    # Holds this many response bytes (whole blocks a Fetch is about to load and may pin) in
    # the server's response budget until the response is written; False when there is no
    # room within a second (the Fetch then answers without data).
    hold_response_bytes: Callable[[int], Awaitable[bool]] | None = None

    def responses(self) -> Messages:
        """The response classes of this request's API and version."""
        return responses(ApiKey(self.api_key), self.api_version)


class CloseConnection(Exception):
    """Raised by a handler to close the client's connection instead of answering, as Kafka
    does where it has no way to answer (an error on a Produce with acks=0). Responses to the
    earlier requests of the connection still go out first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Handler = Callable[["Services", RequestContext, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ApiSpec:
    api_key: ApiKey
    name: str
    min_version: int
    max_version: int
    handler: Handler


REGISTRY: dict[int, ApiSpec] = {}


def api(api_key: ApiKey, min_version: int, max_version: int) -> Callable[[Handler], Handler]:
    """Register a handler for `api_key` serving versions min..max inclusive."""

    def register(fn: Handler) -> Handler:
        if api_key in REGISTRY:
            raise RuntimeError(f"API {api_key.api_name} registered twice")
        if not set(range(min_version, max_version + 1)) <= set(versions_of(api_key)):
            raise RuntimeError(f"{api_key.api_name} {min_version}-{max_version}: not all in kio")
        REGISTRY[api_key] = ApiSpec(api_key, api_key.api_name, min_version, max_version, fn)
        return fn

    return register
