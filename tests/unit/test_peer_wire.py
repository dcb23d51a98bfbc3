from __future__ import annotations

import struct

import pytest

from shoal.read import peer_wire
from shoal.read.peer_wire import FileRanges, WireError


def test_request_round_trip() -> None:
    files = [
        FileRanges("seg/a.seg", 1000, [(0, 10), (990, 10), (500, 0)]),
        FileRanges("seg/é.seg", 1 << 40, [((1 << 40) - 5, 5)]),
    ]
    assert peer_wire.decode_request(peer_wire.encode_request(files)) == files


@pytest.mark.parametrize(
    "files",
    [
        [FileRanges("k", 100, [(95, 6)])],  # past the end
        [FileRanges("k", 100, [(100, 1)])],
        [FileRanges("k", 10**9, [(0, peer_wire.REQUEST_BYTES_MAX + 1)])],
        [FileRanges("k", 10**9, [(0, peer_wire.REQUEST_BYTES_MAX), (0, 1)])],
        [FileRanges("k", 10, [(0, 1)] * (peer_wire.RANGES_MAX + 1))],
        [FileRanges("", 10, [(0, 1)])],
    ],
)
def test_bad_requests_are_refused(files: list[FileRanges]) -> None:
    with pytest.raises(WireError):
        peer_wire.decode_request(peer_wire.encode_request(files))


def test_malformed_bytes_are_refused() -> None:
    good = peer_wire.encode_request([FileRanges("k", 100, [(0, 10)])])
    for body in (
        b"",
        good[:-1],
        good + b"\0",
        struct.pack(">HI", 2, 0),
        b"\0\1\0\0\0\1\0\2\xff\xfe",
    ):
        with pytest.raises(WireError):
            peer_wire.decode_request(body)


def test_response_round_trip_with_error_marker() -> None:
    files = [FileRanges("a", 100, [(0, 3), (10, 2)]), FileRanges("b", 100, [(5, 4)])]
    body = (
        peer_wire.length_prefix(3)
        + b"abc"
        + peer_wire.length_prefix(peer_wire.ERR_READ)
        + peer_wire.length_prefix(4)
        + b"wxyz"
    )
    got = peer_wire.decode_response(body, files)
    assert [[None if c is None else bytes(c) for c in f] for f in got] == [
        [b"abc", None],
        [b"wxyz"],
    ]


def test_response_not_matching_request_is_refused() -> None:
    files = [FileRanges("a", 100, [(0, 3)])]
    for body in (
        peer_wire.length_prefix(2) + b"ab",  # wrong length
        peer_wire.length_prefix(3) + b"ab",  # truncated
        peer_wire.length_prefix(3) + b"abcd",  # trailing
        b"",
    ):
        with pytest.raises(WireError):
            peer_wire.decode_response(body, files)


def test_split_requests_respects_limits_and_keeps_order() -> None:
    files = [
        FileRanges("a", 1000, [(i * 10, 10) for i in range(7)]),
        FileRanges("b", 1000, [(0, 25)]),
        FileRanges("c", 1000, [(0, 1), (1, 1)]),
    ]
    parts = peer_wire.split_requests(files, bytes_max=30, ranges_max=100, files_max=100)
    for p in parts:
        assert sum(f.byte_count() for f in p) <= 30
    # Concatenated in order, the pieces are the original ranges of the original files.
    flat = [(f.key, r) for p in parts for f in p for r in f.ranges]
    assert flat == [(f.key, r) for f in files for r in f.ranges]
    assert len(peer_wire.split_requests(files, 10**9, ranges_max=3, files_max=100)) == 4
    assert len(peer_wire.split_requests(files, 10**9, ranges_max=100, files_max=1)) == 3
    assert len(peer_wire.split_requests(files)) == 1
    # A range larger than the byte limit still goes, alone.
    big = peer_wire.split_requests([FileRanges("x", 100, [(0, 50), (50, 50)])], 10, 100, 100)
    assert [[f.ranges for f in p] for p in big] == [[[(0, 50)]], [[(50, 50)]]]
