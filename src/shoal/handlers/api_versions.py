"""ApiVersions: advertises exactly what the handler registry serves."""

from __future__ import annotations

from typing import Any

from shoal.handlers.adapt import ZERO_THROTTLE, build, error, response_module
from shoal.handlers.base import REGISTRY, RequestContext, api
from shoal.handlers.services import Services
from shoal.protocol import errors

API_VERSIONS = 18


def api_versions_response(version: int, error_code: int = errors.NONE) -> Any:
    module = response_module(API_VERSIONS, version)
    keys = tuple(
        build(
            module,
            "ApiVersion",
            api_key=spec.api_key,
            min_version=spec.min_version,
            max_version=spec.max_version,
        )
        for spec in sorted(REGISTRY.values(), key=lambda s: s.api_key)
    )
    return build(
        module,
        "ApiVersionsResponse",
        error_code=error(error_code),
        api_keys=keys,
        throttle_time=ZERO_THROTTLE,
    )


@api(API_VERSIONS, "ApiVersions", 0, 4)
async def handle_api_versions(svc: Services, ctx: RequestContext, req: Any) -> Any:
    return api_versions_response(ctx.api_version)
