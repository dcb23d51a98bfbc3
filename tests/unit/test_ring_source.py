"""RingBlockSource, PeerServer and PeerClient together: three in-process "agents", each with its
own block cache and a real aiohttp peer endpoint on loopback, over one counting object store,
routed by a static cluster view."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
from aiohttp import web

from shoal.meta.agent_store import AgentInfo
from shoal.read import peer_wire
from shoal.read.block_cache import BlockCache
from shoal.read.fetcher import FetchReader, PartitionFetch
from shoal.read.peer_client import PeerClient
from shoal.read.peer_server import FILES_IN_FLIGHT_MAX, PeerServer
from shoal.read.peer_wire import FileRanges
from shoal.read.ring import Ring, block_key
from shoal.read.ring_source import RingBlockSource
from shoal.read.waiters import PartitionWaiters
from tests.unit.test_fetcher import FakeMeta, make_batch, offsets, split

BLOCK = 1024


class CountingStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.gets: list[tuple[str, int, int]] = []
        self.delay_s = 0.0
        self.fail = False

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        self.gets.append((key, start, end))
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise OSError("store down")
        return self.objects[key][start:end]


class Members:
    """The live list all views share, so a membership change is seen by every agent."""

    def __init__(self) -> None:
        self.agents: list[AgentInfo] = []


class View:
    def __init__(self, members: Members, me: AgentInfo) -> None:
        self._members = members
        self._me = me

    @property
    def me(self) -> AgentInfo:
        return self._me

    def live(self) -> list[AgentInfo]:
        return sorted(self._members.agents, key=lambda a: a.node_id)

    def in_zone(self, az: str) -> list[AgentInfo]:
        return [a for a in self.live() if a.az == az]

    def by_node_id(self, node_id: int) -> AgentInfo | None:
        return next((a for a in self._members.agents if a.node_id == node_id), None)


def agent_info(i: int, http_port: int, az: str = "az-1") -> AgentInfo:
    return AgentInfo(f"agent-{i}", i, "127.0.0.1", 9000 + i, http_port, az, "g", ("proxy",), 0, 0)


@dataclass
class Node:
    info: AgentInfo
    cache: BlockCache
    server: PeerServer
    client: PeerClient
    source: RingBlockSource
    runner: web.AppRunner | None = None


@dataclass
class Cluster:
    store: CountingStore
    members: Members
    nodes: list[Node] = field(default_factory=list)

    async def add(self, i: int, *, timeout_ms: int = 2000, az: str = "az-1") -> Node:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        info = agent_info(i, sock.getsockname()[1], az)
        cache = BlockCache(self.store, BLOCK, 1 << 20)
        server = PeerServer(cache, az)
        client = PeerClient(info.agent_id, az, timeout_ms=timeout_ms)
        source = RingBlockSource(View(self.members, info), cache, client, self.store, BLOCK)
        node = Node(info, cache, server, client, source)
        app = web.Application()
        app.router.add_routes(server.routes())
        node.runner = web.AppRunner(app, access_log=None)
        await node.runner.setup()
        await web.SockSite(node.runner, sock).start()
        self.members.agents.append(info)
        self.nodes.append(node)
        return node

    async def stop_server(self, node: Node) -> None:
        assert node.runner is not None
        await node.runner.cleanup()
        node.runner = None

    def owner(self, key: str, index: int) -> str:
        ring = Ring([a.agent_id for a in self.members.agents if a.az == "az-1"])
        return ring.owner(block_key(key, index))

    def node(self, agent_id: str) -> Node:
        return next(n for n in self.nodes if n.info.agent_id == agent_id)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster(CountingStore(), Members())
    for i in range(3):
        await c.add(i)
    c.store.objects["f1"] = random.Random(1).randbytes(64 * BLOCK + 100)
    c.store.objects["f2"] = random.Random(2).randbytes(20 * BLOCK)
    yield c
    for n in c.nodes:
        await n.client.close()
        if n.runner is not None:
            await n.runner.cleanup()


async def test_ranges_split_at_block_boundaries_each_piece_from_its_owner(cluster: Cluster) -> None:
    data = cluster.store.objects["f1"]
    size = len(data)
    ranges = [(0, size), (BLOCK - 7, 20), (5 * BLOCK, BLOCK), (size - 50, 50), (300, 0)]
    got = await cluster.nodes[0].source.read_ranges("f1", size, ranges)
    assert [bytes(c) for c in got] == [data[p : p + n] for p, n in ranges]
    blocks = (size + BLOCK - 1) // BLOCK
    # Every block is cached by its owner only, and was read from the store exactly once.
    for index in range(blocks):
        owner = cluster.owner("f1", index)
        for n in cluster.nodes:
            assert (("f1", index) in n.cache) == (n.info.agent_id == owner)
    assert sorted(g[1] for g in cluster.store.gets) == [i * BLOCK for i in range(blocks)]
    assert {cluster.owner("f1", i) for i in range(blocks)} == {
        a.info.agent_id for a in cluster.nodes
    }


async def test_one_request_per_owner_per_fetch(cluster: Cluster) -> None:
    d1, d2 = cluster.store.objects["f1"], cluster.store.objects["f2"]
    requests = [
        ("f1", len(d1), [(i * 3 * BLOCK + 11, 2 * BLOCK) for i in range(10)]),
        ("f2", len(d2), [(0, len(d2)), (7, 3)]),
    ]
    reader = cluster.nodes[1]
    before = reader.client.requests
    answers = await reader.source.read_files(requests)
    for (key, _, ranges), answer in zip(requests, answers, strict=True):
        assert not isinstance(answer, Exception)
        data = cluster.store.objects[key]
        assert [bytes(c) for c in answer] == [data[p : p + n] for p, n in ranges]
    remote_owners = {
        cluster.owner(key, i)
        for key, _, ranges in requests
        for p, n in ranges
        for i in range(p // BLOCK, (p + n - 1) // BLOCK + 1)
    } - {reader.info.agent_id}
    assert len(remote_owners) == 2
    assert reader.client.requests - before == 2
    for n in cluster.nodes:
        assert n.server.requests == (1 if n.info.agent_id in remote_owners else 0)


async def test_hundred_concurrent_readers_of_one_block_cost_one_get(cluster: Cluster) -> None:
    cluster.store.delay_s = 0.02  # so that the readers overlap the load
    data = cluster.store.objects["f2"]
    index = 4
    rng = random.Random(7)

    async def reader(i: int) -> bytes:
        pos = index * BLOCK + rng.randrange(BLOCK - 64)
        node = cluster.nodes[i % 3]
        (chunk,) = await node.source.read_ranges("f2", len(data), [(pos, 64)])
        assert bytes(chunk) == data[pos : pos + 64]
        return bytes(chunk)

    await asyncio.gather(*(reader(i) for i in range(100)))
    assert cluster.store.gets == [("f2", index * BLOCK, (index + 1) * BLOCK)]
    owner = cluster.node(cluster.owner("f2", index))
    assert owner.cache.stats()["misses"] == 1


async def test_owner_down_reads_from_store_and_counts_it(cluster: Cluster) -> None:
    data = cluster.store.objects["f1"]
    reader = cluster.nodes[0]
    index = next(i for i in range(64) if cluster.owner("f1", i) != reader.info.agent_id)
    down = cluster.node(cluster.owner("f1", index))
    await cluster.stop_server(down)
    pos = index * BLOCK + 100
    (chunk,) = await reader.source.read_ranges("f1", len(data), [(pos, 200)])
    assert bytes(chunk) == data[pos : pos + 200]
    # The whole block, loaded once into the reader's own cache: later fallbacks hit it.
    assert cluster.store.gets == [("f1", index * BLOCK, (index + 1) * BLOCK)]
    assert reader.source.fallbacks == {"unreachable": 1}
    assert ("f1", index) in reader.cache
    # While suspect, the owner is not asked again: the next read goes to the store at once.
    requests = reader.client.requests
    (chunk,) = await reader.source.read_ranges("f1", len(data), [(pos, 10)])
    assert bytes(chunk) == data[pos : pos + 10]
    assert reader.client.requests == requests
    assert reader.source.fallbacks == {"unreachable": 1, "suspect": 1}
    assert len(cluster.store.gets) == 1


async def test_owner_that_hangs_times_out_and_falls_back() -> None:
    store = CountingStore()
    store.objects["f"] = bytes(range(256)) * 16
    members = Members()
    c = Cluster(store, members)
    fast = await c.add(0, timeout_ms=200)
    hung_started = asyncio.Event()
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        hung_started.set()
        await release.wait()
        return web.Response()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = web.Application()
    app.router.add_post(peer_wire.PATH, hang)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    members.agents.append(agent_info(1, sock.getsockname()[1]))
    try:
        ring = Ring([a.agent_id for a in members.agents])
        index = next(i for i in range(4) if ring.owner(block_key("f", i)) == "agent-1")
        pos = index * BLOCK
        (chunk,) = await fast.source.read_ranges("f", 4096, [(pos, 100)])
        assert bytes(chunk) == store.objects["f"][pos : pos + 100]
        assert hung_started.is_set()
        assert fast.source.fallbacks == {"timeout": 1}
        assert fast.client.errors["timeout"] == 1
    finally:
        release.set()
        await fast.client.close()
        assert fast.runner is not None
        await fast.runner.cleanup()
        await runner.cleanup()


async def test_owner_store_error_is_answered_with_marker_and_read_directly(
    cluster: Cluster,
) -> None:
    data = cluster.store.objects["f2"]
    reader = cluster.nodes[2]
    index = next(i for i in range(20) if cluster.owner("f2", i) != reader.info.agent_id)
    owner = cluster.node(cluster.owner("f2", index))
    real = cluster.store.get_range
    calls = 0

    async def fail_first(key: str, start: int, end: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("transient")
        return await real(key, start, end)

    cluster.store.get_range = fail_first  # type: ignore[method-assign]
    pos = index * BLOCK + 1
    (chunk,) = await reader.source.read_ranges("f2", len(data), [(pos, 30)])
    assert bytes(chunk) == data[pos : pos + 30]
    assert owner.server.read_errors == 1
    assert reader.source.fallbacks == {"error": 1}
    assert calls == 2


async def test_store_down_fails_only_that_file(cluster: Cluster) -> None:
    cluster.store.fail = True
    answers = await cluster.nodes[0].source.read_files([("f1", 64 * BLOCK + 100, [(0, 3 * BLOCK)])])
    assert isinstance(answers[0], Exception)
    with pytest.raises(ValueError):
        await cluster.nodes[0].source.read_ranges("f1", 10, [(5, 6)])


async def test_membership_change_moves_only_affected_blocks(cluster: Cluster) -> None:
    source = cluster.nodes[0].source
    keys = [(f"seg/{k}", i) for k in range(20) for i in range(20)]
    before = {k: source.owner(*k).agent_id for k in keys}
    changes = source.ring_changes
    source.owner("seg/0", 0)
    assert source.ring_changes == changes  # no rebuild while membership stands still
    new = await cluster.add(3)
    after = {k: source.owner(*k).agent_id for k in keys}
    assert source.ring_changes == changes + 1
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(after[k] == new.info.agent_id for k in moved)
    assert len(moved) < len(keys) / 2
    # Removing it again moves exactly those blocks back.
    cluster.members.agents.remove(new.info)
    assert {k: source.owner(*k).agent_id for k in keys} == before


async def test_agents_of_other_zones_are_not_in_the_ring(cluster: Cluster) -> None:
    other = await cluster.add(9, az="az-2")
    for n in cluster.nodes[:3]:
        assert other.info.agent_id not in n.source.members()
    # The lone agent of az-2 owns everything there and reads without peers.
    data = cluster.store.objects["f2"]
    got = await other.source.read_ranges("f2", len(data), [(0, len(data))])
    assert bytes(got[0]) == data
    assert other.client.requests == 0


async def test_peer_server_refuses_bad_requests(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    url = node.info.http_base + peer_wire.PATH
    bad = peer_wire.encode_request([FileRanges("f1", 100, [(90, 20)])])
    async with aiohttp.ClientSession() as s:
        for body in (b"junk", bad):
            async with s.post(url, data=body) as resp:
                assert resp.status == 400
    assert node.server.bad_requests == 2
    assert cluster.store.gets == []


async def test_cross_zone_peer_bytes_are_counted(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    client = PeerClient("x", "az-9")
    try:
        data = cluster.store.objects["f2"]
        ans = await client.read(node.info, [FileRanges("f2", len(data), [(0, 100)])])
        assert bytes(ans[0][0] or b"") == data[:100]
    finally:
        await client.close()
    assert node.server.cross_zone_bytes == 100
    same = cluster.nodes[1]
    await same.client.read(node.info, [FileRanges("f2", len(data), [(0, 100)])])
    assert node.server.cross_zone_bytes == 100
    assert node.server.bytes_sent == 200


async def test_fetch_reader_over_the_ring(cluster: Cluster) -> None:
    """A real FetchReader on agent 0: three partitions spread over several segment files; one
    fetch asks each other owner at most once."""
    meta = FakeMeta(cluster.store)  # type: ignore[arg-type]
    meta.create("t", 3)
    batches = {p: [make_batch(2, bytes([p]) * 700) for _ in range(6)] for p in range(3)}
    for i in range(6):
        meta.commit([("t", p, batches[p][i]) for p in range(3)])
    node = cluster.nodes[0]
    reader = FetchReader(meta, node.source, PartitionWaiters(), poll_interval_s=None)
    before = node.client.requests
    reads = await reader.fetch(
        [PartitionFetch("t", p, 0, 1 << 20) for p in range(3)], 1 << 20, 1, 0
    )
    for p, r in enumerate(reads):
        assert r.error_code == 0
        assert offsets(r.batches) == [0, 2, 4, 6, 8, 10]
        assert [b[8:] for b in split(r.batches)] == [b[8:] for b in batches[p]]
    assert 1 <= node.client.requests - before <= 2
    assert sum(n.server.requests for n in cluster.nodes) == node.client.requests - before


async def test_peer_sessions_carry_identity_headers(cluster: Cluster) -> None:
    seen: list[tuple[str | None, str | None]] = []
    node = cluster.nodes[0]
    inner = node.server.handle

    async def spy(request: web.Request) -> web.StreamResponse:
        seen.append(
            (request.headers.get(peer_wire.AZ_HEADER), request.headers.get(peer_wire.AGENT_HEADER))
        )
        return await inner(request)

    node.server.handle = spy  # type: ignore[method-assign]
    # Routes were bound at startup; call through a fresh server with the spy.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = web.Application()
    app.router.add_post(peer_wire.PATH, spy)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        target = replace(node.info, http_port=sock.getsockname()[1])
        await cluster.nodes[1].client.read(target, [FileRanges("f2", 20 * BLOCK, [(0, 5)])])
    finally:
        await runner.cleanup()
    assert seen == [("az-1", "agent-1")]


class SlowSource:
    """A BlockSource whose loads never finish in time."""

    async def read_ranges(
        self, key: str, file_size: int, ranges: list[tuple[int, int]]
    ) -> list[bytes]:
        await asyncio.sleep(5)
        return [b"" for _ in ranges]


async def test_owner_slow_store_answers_error_markers_within_its_timeout() -> None:
    server = PeerServer(SlowSource(), "az-1", read_timeout_s=0.05)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = web.Application()
    app.router.add_routes(server.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    client = PeerClient("agent-0", "az-1", timeout_ms=2000)
    try:
        peer = agent_info(1, sock.getsockname()[1])
        files = [FileRanges("a", 100, [(0, 10), (20, 5)]), FileRanges("b", 10, [(0, 10)])]
        answers = await client.read(peer, files)
        assert answers == [[None, None], [None]]
        assert server.read_errors == 2
        assert server.bytes_sent == 0
    finally:
        await client.close()
        await runner.cleanup()


async def test_reads_past_the_request_limit_are_split_and_rejoined(cluster: Cluster) -> None:
    owner = cluster.nodes[0]
    client = PeerClient("agent-x", "az-1", request_bytes_max=3000)
    d1, d2 = cluster.store.objects["f1"], cluster.store.objects["f2"]
    files = [
        FileRanges("f1", len(d1), [(i * 1500, 1000) for i in range(6)]),
        FileRanges("f2", len(d2), [(0, 2500), (9000, 10)]),
    ]
    try:
        answers = await client.read(owner.info, files)
    finally:
        await client.close()
    assert [[bytes(c) for c in a if c is not None] for a in answers] == [
        [d1[p : p + n] for p, n in files[0].ranges],
        [d2[p : p + n] for p, n in files[1].ranges],
    ]
    assert client.requests == owner.server.requests == 3


class CountingSource:
    """A BlockSource that counts the files being read at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def read_ranges(
        self, key: str, file_size: int, ranges: list[tuple[int, int]]
    ) -> list[bytes]:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.01)
        self.now -= 1
        return [b"x" * n for _, n in ranges]


async def test_one_peer_request_reads_a_bounded_number_of_files_at_once() -> None:
    # A request may name 2,000 files; loading all their blocks at once would hold them all.
    source = CountingSource()
    server = PeerServer(source, "az-1")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = web.Application()
    app.router.add_routes(server.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    client = PeerClient("agent-0", "az-1", timeout_ms=5000)
    try:
        files = [FileRanges(f"f{i}", 100, [(0, 1)]) for i in range(200)]
        answers = await client.read(agent_info(1, sock.getsockname()[1]), files)
        assert answers == [[b"x"]] * 200
        assert source.most <= FILES_IN_FLIGHT_MAX
    finally:
        await client.close()
        await runner.cleanup()
