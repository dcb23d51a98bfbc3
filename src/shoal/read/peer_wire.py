"""Wire format of the agent-to-agent block-read endpoint (`POST /v1/blocks/read`).

Binary, big-endian, so that neither side parses JSON for every range of a hot fetch and the
response bytes can be sliced without copying.

Request:
    u16 version (1) | u32 file count
    per file: u16 key length | key (UTF-8) | u64 file size | u32 range count
              | per range: u64 pos | u32 length
Response (status 200), one entry per range in request order:
    i32 length >= 0 followed by that many bytes, or a negative error marker and no bytes:
    ERR_READ (-1): the owner could not load the bytes (object store failed or timed out).

A malformed or over-limit request gets status 400 and a text reason; the requester treats any
non-200 answer like an unreachable owner (it reads from the object store itself).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from shoal.read.block_cache import Chunk

VERSION = 1
PATH = "/v1/blocks/read"
CONTENT_TYPE = "application/x-shoal-blocks"
# Headers naming the requester: its zone decides whether the bytes crossed zones.
AZ_HEADER = "X-Shoal-AZ"
AGENT_HEADER = "X-Shoal-Agent"

ERR_READ = -1

# Limits of one request; the client splits larger reads into several requests.
REQUEST_BYTES_MAX = 64 * 1024 * 1024  # range bytes asked for in one request
RANGES_MAX = 20_000  # ranges in one request
FILES_MAX = 2_000  # files in one request
KEY_BYTES_MAX = 1024

_HEAD = struct.Struct(">HI")
_KEY_LEN = struct.Struct(">H")
_FILE = struct.Struct(">QI")
_RANGE = struct.Struct(">QI")
_LEN = struct.Struct(">i")
LEN_SIZE = _LEN.size


class WireError(ValueError):
    """The request or response does not follow the format or exceeds its limits."""


@dataclass(frozen=True, slots=True)
class FileRanges:
    """Byte ranges `(pos, length)` of one immutable object of `file_size` bytes."""

    key: str
    file_size: int
    ranges: list[tuple[int, int]]

    def byte_count(self) -> int:
        return sum(length for _, length in self.ranges)


def check_range(file_size: int, pos: int, length: int) -> None:
    if pos < 0 or length < 0 or pos + length > file_size:
        raise WireError(f"range [{pos}, {pos + length}) outside object of {file_size} bytes")


def encode_request(files: Sequence[FileRanges]) -> bytes:
    parts: list[bytes] = [_HEAD.pack(VERSION, len(files))]
    for f in files:
        key = f.key.encode()
        parts.append(_KEY_LEN.pack(len(key)))
        parts.append(key)
        parts.append(_FILE.pack(f.file_size, len(f.ranges)))
        parts.extend(_RANGE.pack(pos, length) for pos, length in f.ranges)
    return b"".join(parts)


def decode_request(body: bytes) -> list[FileRanges]:
    """Parse and validate a request: every range inside its file, totals within the limits."""
    try:
        version, count = _HEAD.unpack_from(body, 0)
        if version != VERSION:
            raise WireError(f"unsupported version {version}")
        if count > FILES_MAX:
            raise WireError(f"{count} files in one request (limit {FILES_MAX})")
        at = _HEAD.size
        files: list[FileRanges] = []
        ranges_total = 0
        bytes_total = 0
        for _ in range(count):
            (key_len,) = _KEY_LEN.unpack_from(body, at)
            at += _KEY_LEN.size
            if not 0 < key_len <= KEY_BYTES_MAX or at + key_len > len(body):
                raise WireError("bad key length")
            key = body[at : at + key_len].decode()
            at += key_len
            file_size, n = _FILE.unpack_from(body, at)
            at += _FILE.size
            ranges_total += n
            if ranges_total > RANGES_MAX:
                raise WireError(f"more than {RANGES_MAX} ranges in one request")
            ranges: list[tuple[int, int]] = []
            for _ in range(n):
                pos, length = _RANGE.unpack_from(body, at)
                at += _RANGE.size
                check_range(file_size, pos, length)
                bytes_total += length
                ranges.append((pos, length))
            if bytes_total > REQUEST_BYTES_MAX:
                raise WireError(f"more than {REQUEST_BYTES_MAX} bytes in one request")
            files.append(FileRanges(key, file_size, ranges))
    except struct.error as exc:
        raise WireError(f"truncated request: {exc}") from None
    except UnicodeDecodeError:
        raise WireError("key is not UTF-8") from None
    if at != len(body):
        raise WireError(f"{len(body) - at} trailing bytes")
    return files


def length_prefix(length: int) -> bytes:
    return _LEN.pack(length)


def decode_response(body: bytes, files: Sequence[FileRanges]) -> list[list[Chunk | None]]:
    """Per file, per range: a view of the bytes (into `body`, no copy), or None for an error
    marker. Raises WireError if the body does not match the request."""
    view = memoryview(body)
    at = 0
    out: list[list[Chunk | None]] = []
    try:
        for f in files:
            chunks: list[Chunk | None] = []
            for _, length in f.ranges:
                (n,) = _LEN.unpack_from(body, at)
                at += LEN_SIZE
                if n < 0:
                    chunks.append(None)
                    continue
                if n != length or at + n > len(body):
                    raise WireError(f"range of {length} bytes answered with {n}")
                chunks.append(view[at : at + n])
                at += n
            out.append(chunks)
    except struct.error as exc:
        raise WireError(f"truncated response: {exc}") from None
    if at != len(body):
        raise WireError(f"{len(body) - at} trailing bytes in response")
    return out


def split_requests(
    files: Sequence[FileRanges],
    bytes_max: int = REQUEST_BYTES_MAX,
    ranges_max: int = RANGES_MAX,
    files_max: int = FILES_MAX,
) -> list[list[FileRanges]]:
    """Group `files` into requests within the limits of one request (a single range larger
    than `bytes_max` goes alone)."""
    requests: list[list[FileRanges]] = []
    current: list[FileRanges] = []
    size = 0
    count = 0
    for f in files:
        pending: list[tuple[int, int]] = []
        for r in f.ranges:
            full = size + r[1] > bytes_max or count + 1 > ranges_max
            if not pending and len(current) + 1 > files_max:
                full = True
            if full and (current or pending):
                if pending:
                    current.append(FileRanges(f.key, f.file_size, pending))
                    pending = []
                requests.append(current)
                current, size, count = [], 0, 0
            pending.append(r)
            size += r[1]
            count += 1
        if pending:
            current.append(FileRanges(f.key, f.file_size, pending))
    if current:
        requests.append(current)
    return requests
