"""The client's availability zone, read from its `client.id` (DESIGN.md §5).

`client.id` is a comma-separated list of `key=value` pairs, e.g.
`shoal_az=us-east-1a,app=billing`; a plain name may come first or anywhere
(`my-app,shoal_az=us-east-1a`) and is ignored. The zone keys are `shoal_az`, and WarpStream's
`ws_az` and `warpstream_az` so that clients configured for WarpStream work unchanged. Keys
are matched case-insensitively; surrounding spaces are dropped. The leftmost zone key with a
non-empty value wins.
"""

from __future__ import annotations

from typing import Final

ZONE_KEYS: Final = ("shoal_az", "ws_az", "warpstream_az")
# client.id is a Kafka STRING (up to 32767 bytes); zone parsing only looks at this much.
_CLIENT_ID_CHARS_MAX: Final = 4096


def client_id_pairs(client_id: str | None) -> dict[str, str]:
    """The `key=value` pairs of a client id (first occurrence of a key wins; parts without
    `=` are skipped)."""
    pairs: dict[str, str] = {}
    if not client_id:
        return pairs
    for part in client_id[:_CLIENT_ID_CHARS_MAX].split(","):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        if key and key not in pairs:
            pairs[key] = value.strip()
    return pairs


def client_zone(client_id: str | None) -> str | None:
    """The zone the client names, None when it names none (or names an empty one)."""
    if not client_id:
        return None
    for part in client_id[:_CLIENT_ID_CHARS_MAX].split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() in ZONE_KEYS and value.strip():
            return value.strip()
    return None
