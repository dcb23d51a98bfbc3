"""ApiVersions: advertises exactly what the handler registry serves.

Versions served: 0-4.
- v0: the list of (api key, min, max).
- v1: throttle time.
- v3: flexible; client software name and version in the request; the server answers v0 when
  the client asked for a version it does not serve (KIP-511), so the client can retry.
- v4: same as v3 (KIP-848's feature-version semantics; no supported features are listed).
"""

from __future__ import annotations

from typing import Any

from kio.schema.api_versions.v4.response import ApiVersion, ApiVersionsResponse

from shoal.handlers.base import REGISTRY, RequestContext, api
from shoal.handlers.services import Services
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import ZERO_THROTTLE, error, responses


def api_versions_response(version: int, error_code: int = errors.NONE) -> Any:
    msgs = responses(ApiKey.API_VERSIONS, version)
    keys = tuple(
        msgs.make(
            ApiVersion,
            api_key=spec.api_key,
            min_version=spec.min_version,
            max_version=spec.max_version,
        )
        for spec in sorted(REGISTRY.values(), key=lambda s: s.api_key)
    )
    return msgs.make(
        ApiVersionsResponse,
        error_code=error(error_code),
        api_keys=keys,
        throttle_time=ZERO_THROTTLE,
    )


@api(ApiKey.API_VERSIONS, 0, 4)
async def handle_api_versions(svc: Services, ctx: RequestContext, req: Any) -> Any:
    return api_versions_response(ctx.api_version)
