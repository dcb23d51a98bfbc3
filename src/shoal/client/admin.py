"""Typed admin calls over the Kafka protocol, for tools (`shoal groups`) and tests.

Works against any Kafka-compatible cluster: group requests go to the group's coordinator
(FindCoordinator), ListOffsets to each partition's leader, ListGroups to every broker, as
Kafka's own admin client does. Each call picks the highest version both sides speak and builds
kio's dataclass of that version, keeping only the fields the version has.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from kio.schema.consumer_protocol_assignment.v0.data import ConsumerProtocolAssignment
from kio.schema.delete_groups.v2.request import DeleteGroupsRequest
from kio.schema.describe_groups.v6.request import DescribeGroupsRequest
from kio.schema.find_coordinator.v6.request import FindCoordinatorRequest
from kio.schema.list_groups.v5.request import ListGroupsRequest
from kio.schema.list_offsets.v11.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.metadata.v13.request import MetadataRequest, MetadataRequestTopic
from kio.schema.offset_commit.v10.request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kio.schema.offset_fetch.v7.request import OffsetFetchRequestTopic
from kio.schema.offset_fetch.v10.request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopics,
)
from kio.serial import entity_reader
from kio.static.primitive import i32Timedelta, i64Timedelta

from shoal.client.connection import ClientError, KafkaConnection
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import Messages, requests

EARLIEST: Final = -2
LATEST: Final = -1
NO_OFFSET: Final = -1
GROUP_KEY_TYPE: Final = 0

# Client version ranges (API key: (min, max)) whose request fields this module fills.
CLIENT_VERSIONS: Final[dict[ApiKey, tuple[int, int]]] = {
    ApiKey.METADATA: (4, 12),  # v4 lets us refuse auto-creation: a lookup must not create
    ApiKey.FIND_COORDINATOR: (1, 6),
    ApiKey.LIST_GROUPS: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 6),
    ApiKey.OFFSET_FETCH: (2, 9),  # v2: null topics ("every partition"); v10 names topics by id
    ApiKey.LIST_OFFSETS: (1, 9),
    ApiKey.OFFSET_COMMIT: (2, 9),
    ApiKey.DELETE_GROUPS: (0, 2),
}
_COORDINATOR_RETRY: Final = frozenset(
    {errors.COORDINATOR_LOAD_IN_PROGRESS, errors.COORDINATOR_NOT_AVAILABLE, errors.NOT_COORDINATOR}
)
_CONNECTIONS_MAX: Final = 64


class KafkaApiError(ClientError):
    """A broker answered with an error code."""

    def __init__(self, code: int, context: str) -> None:
        super().__init__(f"{context}: {errors.error_name(code)}")
        self.code = code
        self.name = errors.error_name(code)


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Broker:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TopicMetadata:
    name: str
    error_code: int
    leaders: dict[int, int]  # partition -> leader node id


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    brokers: dict[int, Broker]
    topics: dict[str, TopicMetadata]


@dataclass(frozen=True, slots=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    assignment: tuple[TP, ...]


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    error_code: int
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True, slots=True)
class Committed:
    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass(frozen=True, slots=True)
class ListedOffset:
    error_code: int
    offset: int
    timestamp: int


def decode_assignment(data: bytes) -> tuple[TP, ...]:
    """Partitions of a consumer-protocol assignment (any version: the fields we read are in all).
    Bytes that do not decode give no partitions: a describe must not fail on a foreign client."""
    if len(data) < 2:
        return ()
    try:
        assignment, _ = entity_reader(ConsumerProtocolAssignment)(data, 2)
    except Exception:  # kio raises several types on bad bytes
        return ()
    return tuple(
        TP(str(t.topic), int(p)) for t in assignment.assigned_partitions for p in t.partitions
    )


def parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """`host:port[,host:port...]`; IPv6 hosts in brackets (`[::1]:9092`)."""
    out = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bad bootstrap address {item!r} (want HOST:PORT)")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise ValueError("empty bootstrap address")
    return out


def _tree(
    msgs: Messages,
    classes: tuple[type[Any], type[Any]],
    partitions: Iterable[TP],
    fields: Callable[[TP], dict[str, Any]],
) -> tuple[Any, ...]:
    """The topics > partitions part of a request: topic class holding partition class."""
    topic_cls, partition_cls = classes
    return tuple(
        msgs.make(
            topic_cls,
            name=topic,
            partitions=tuple(
                msgs.make(partition_cls, partition_index=p, **fields(TP(topic, p))) for p in parts
            ),
        )
        for topic, parts in _by_topic(partitions).items()
    )


def _by_topic(partitions: Iterable[TP]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for tp in partitions:
        out.setdefault(tp.topic, []).append(tp.partition)
    return out


class Admin:
    """Admin calls against a cluster reached through `bootstrap`. Use as `async with`."""

    def __init__(
        self, bootstrap: str, *, timeout_s: float = 30.0, client_id: str = "shoal-admin"
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.timeout_s = timeout_s
        self.client_id = client_id
        self._connections: dict[tuple[str, int], KafkaConnection] = {}
        self._brokers: dict[int, Broker] = {}

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            await conn.close()

    # -- connections ----
    async def _connect(self, host: str, port: int) -> KafkaConnection:
        conn = self._connections.get((host, port))
        if conn is not None and not conn.closed:
            return conn
        if len(self._connections) >= _CONNECTIONS_MAX:
            await self.close()
        conn = await KafkaConnection.open(
            host,
            port,
            client_id=self.client_id,
            connect_timeout_s=self.timeout_s,
            request_timeout_s=self.timeout_s,
        )
        self._connections[(host, port)] = conn
        return conn

    async def _any(self) -> KafkaConnection:
        """A connection to the first bootstrap address that answers."""
        last: ClientError | None = None
        for host, port in self.bootstrap:
            try:
                return await self._connect(host, port)
            except ClientError as exc:
                last = exc
        assert last is not None
        raise last

    async def _node(self, node_id: int) -> KafkaConnection:
        if node_id not in self._brokers:
            await self.metadata([])
        broker = self._brokers.get(node_id)
        if broker is None:
            raise ClientError(f"broker {node_id} is not in the cluster metadata")
        return await self._connect(broker.host, broker.port)

    async def _call(self, conn: KafkaConnection, api_key: ApiKey, build: Any) -> tuple[int, Any]:
        """Pick a version, build with `build(version)`, send; (version, response)."""
        lo, hi = CLIENT_VERSIONS[api_key]
        version = conn.pick_version(api_key, lo, hi)
        return version, await conn.send(build(version))

    # -- cluster ----
    async def metadata(self, topics: Sequence[str] | None) -> ClusterMetadata:
        """Brokers and the given topics (None: every topic). Never creates topics."""

        def build(v: int) -> Any:
            wanted = None
            if topics is not None:
                wanted = tuple(
                    requests(ApiKey.METADATA, v).make(MetadataRequestTopic, name=t, topic_id=None)
                    for t in topics
                )
            return requests(ApiKey.METADATA, v).make(
                MetadataRequest,
                topics=wanted,
                allow_auto_topic_creation=False,
                include_cluster_authorized_operations=False,
                include_topic_authorized_operations=False,
            )

        _, resp = await self._call(await self._any(), ApiKey.METADATA, build)
        brokers = {
            int(b.node_id): Broker(int(b.node_id), str(b.host), int(b.port)) for b in resp.brokers
        }
        self._brokers = brokers
        out = {}
        for t in resp.topics:
            if t.name is None:
                continue
            leaders = {int(p.partition_index): int(p.leader_id) for p in t.partitions}
            out[str(t.name)] = TopicMetadata(str(t.name), int(t.error_code), leaders)
        return ClusterMetadata(brokers, out)

    async def find_coordinator(self, group_id: str) -> Broker:
        def build(v: int) -> Any:
            return requests(ApiKey.FIND_COORDINATOR, v).make(
                FindCoordinatorRequest,
                key=group_id,
                key_type=GROUP_KEY_TYPE,
                coordinator_keys=(group_id,),
            )

        async def attempt() -> tuple[int, Any]:
            version, resp = await self._call(await self._any(), ApiKey.FIND_COORDINATOR, build)
            found = resp.coordinators[0] if version >= 4 else resp
            return int(found.error_code), found

        code, found = await self._retrying(attempt)
        if code != errors.NONE:
            raise KafkaApiError(code, f"FindCoordinator for group {group_id!r}")
        return Broker(int(found.node_id), str(found.host), int(found.port))

    async def _retrying(self, attempt: Callable[[], Awaitable[tuple[int, Any]]]) -> tuple[int, Any]:
        """Repeat `attempt` (with backoff, within the timeout) while its error code says the
        coordinator is loading, unavailable or moved."""
        deadline = time.monotonic() + self.timeout_s
        delay = 0.05
        while True:
            code, value = await attempt()
            if code not in _COORDINATOR_RETRY or time.monotonic() + delay > deadline:
                return code, value
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _coordinator(self, group_id: str) -> KafkaConnection:
        node = await self.find_coordinator(group_id)
        return await self._connect(node.host, node.port)

    async def _group_call(self, group_id: str, api_key: ApiKey, build: Any, code_of: Any) -> Any:
        """Send to the group's coordinator; find it again while the answer says it moved."""

        async def attempt() -> tuple[int, Any]:
            version, resp = await self._call(await self._coordinator(group_id), api_key, build)
            return int(code_of(version, resp)), (version, resp)

        return (await self._retrying(attempt))[1]

    # -- groups ----
    async def list_groups(self) -> list[GroupListing]:
        """Groups of every broker (each broker lists the groups it coordinates)."""
        if not self._brokers:
            await self.metadata([])
        found: dict[str, GroupListing] = {}
        for node_id in sorted(self._brokers):
            conn = await self._node(node_id)
            _, resp = await self._call(
                conn,
                ApiKey.LIST_GROUPS,
                lambda v: requests(ApiKey.LIST_GROUPS, v).make(
                    ListGroupsRequest, states_filter=(), types_filter=()
                ),
            )
            if int(resp.error_code) != errors.NONE:
                raise KafkaApiError(int(resp.error_code), f"ListGroups on broker {node_id}")
            for g in resp.groups:
                state = str(getattr(g, "group_state", "") or "")
                found[str(g.group_id)] = GroupListing(str(g.group_id), str(g.protocol_type), state)
        return sorted(found.values(), key=lambda g: g.group_id)

    async def describe_group(self, group_id: str) -> GroupDescription:
        def build(v: int) -> Any:
            return requests(ApiKey.DESCRIBE_GROUPS, v).make(
                DescribeGroupsRequest,
                groups=(group_id,),
                include_authorized_operations=False,
            )

        _, resp = await self._group_call(
            group_id, ApiKey.DESCRIBE_GROUPS, build, lambda _v, r: int(r.groups[0].error_code)
        )
        g = resp.groups[0]
        consumer = str(g.protocol_type) == "consumer"
        members = tuple(
            MemberDescription(
                member_id=str(m.member_id),
                group_instance_id=getattr(m, "group_instance_id", None),
                client_id=str(m.client_id),
                client_host=str(m.client_host),
                assignment=decode_assignment(bytes(m.member_assignment)) if consumer else (),
            )
            for m in g.members
        )
        return GroupDescription(
            group_id=str(g.group_id),
            error_code=int(g.error_code),
            state=str(g.group_state),
            protocol_type=str(g.protocol_type),
            protocol=str(g.protocol_data),
            members=members,
        )

    async def describe_groups(self, group_ids: Sequence[str]) -> list[GroupDescription]:
        return [await self.describe_group(g) for g in group_ids]

    async def offset_fetch(
        self, group_id: str, partitions: Sequence[TP] | None = None
    ) -> dict[TP, Committed]:
        """Committed offsets of the group (None: every partition it has a commit for)."""

        def build(v: int) -> Any:
            if v >= 8:
                topics = None
                if partitions is not None:
                    topics = tuple(
                        requests(ApiKey.OFFSET_FETCH, v).make(
                            OffsetFetchRequestTopics, name=t, partition_indexes=tuple(ps)
                        )
                        for t, ps in _by_topic(partitions).items()
                    )
                group = requests(ApiKey.OFFSET_FETCH, v).make(
                    OffsetFetchRequestGroup,
                    group_id=group_id,
                    member_id=None,
                    member_epoch=-1,
                    topics=topics,
                )
                return requests(ApiKey.OFFSET_FETCH, v).make(
                    OffsetFetchRequest, groups=(group,), require_stable=False
                )
            topics = None
            if partitions is not None:
                topics = tuple(
                    requests(ApiKey.OFFSET_FETCH, v).make(
                        OffsetFetchRequestTopic, name=t, partition_indexes=tuple(ps)
                    )
                    for t, ps in _by_topic(partitions).items()
                )
            return requests(ApiKey.OFFSET_FETCH, v).make(
                OffsetFetchRequest, group_id=group_id, topics=topics, require_stable=False
            )

        def group_code(v: int, r: Any) -> int:
            if v >= 8:
                return int(r.groups[0].error_code)
            if v >= 2:
                return int(r.error_code)
            codes = [int(p.error_code) for t in r.topics for p in t.partitions]
            return codes[0] if codes else errors.NONE

        version, resp = await self._group_call(group_id, ApiKey.OFFSET_FETCH, build, group_code)
        code = group_code(version, resp)
        if code != errors.NONE:
            raise KafkaApiError(code, f"OffsetFetch for group {group_id!r}")
        topics = resp.groups[0].topics if version >= 8 else resp.topics
        out = {}
        for t in topics:
            for p in t.partitions:
                if int(p.error_code) != errors.NONE:
                    raise KafkaApiError(
                        int(p.error_code), f"OffsetFetch {t.name}/{p.partition_index}"
                    )
                if int(p.committed_offset) >= 0:
                    out[TP(str(t.name), int(p.partition_index))] = Committed(
                        int(p.committed_offset),
                        int(getattr(p, "committed_leader_epoch", -1)),
                        p.metadata,
                    )
        return out

    async def offset_commit(self, group_id: str, offsets: dict[TP, int]) -> dict[TP, int]:
        """Commit as an admin tool does (generation -1, no member id): the coordinator accepts
        it only for a group without members. Returns the error code of each partition."""

        def build(v: int) -> Any:
            topics = _tree(
                requests(ApiKey.OFFSET_COMMIT, v),
                (OffsetCommitRequestTopic, OffsetCommitRequestPartition),
                offsets,
                lambda tp: {
                    "committed_offset": offsets[tp],
                    "committed_leader_epoch": -1,
                    "committed_metadata": "",
                },
            )
            return requests(ApiKey.OFFSET_COMMIT, v).make(
                OffsetCommitRequest,
                group_id=group_id,
                generation_id_or_member_epoch=-1,
                member_id="",
                group_instance_id=None,
                topics=topics,
                retention_time=i64Timedelta.parse(datetime.timedelta(milliseconds=-1)),
            )

        def first_code(_v: int, r: Any) -> int:
            codes = [int(p.error_code) for t in r.topics for p in t.partitions]
            return codes[0] if codes else errors.NONE

        _, resp = await self._group_call(group_id, ApiKey.OFFSET_COMMIT, build, first_code)
        return {
            TP(str(t.name), int(p.partition_index)): int(p.error_code)
            for t in resp.topics
            for p in t.partitions
        }

    async def delete_groups(self, group_ids: Sequence[str]) -> dict[str, int]:
        """Error code per group (NON_EMPTY_GROUP while it has members)."""
        out: dict[str, int] = {}
        for group_id in group_ids:
            _, resp = await self._group_call(
                group_id,
                ApiKey.DELETE_GROUPS,
                lambda v, g=group_id: requests(ApiKey.DELETE_GROUPS, v).make(
                    DeleteGroupsRequest, groups_names=(g,)
                ),
                lambda _v, r: int(r.results[0].error_code),
            )
            for result in resp.results:
                out[str(result.group_id)] = int(result.error_code)
        return out

    # -- offsets ----
    async def list_offsets(self, partitions: Sequence[TP], spec: int) -> dict[TP, ListedOffset]:
        """Offsets by `spec`: EARLIEST, LATEST or a timestamp in ms (the first offset whose
        record timestamp is at or after it; offset -1 when there is none)."""
        meta = await self.metadata(sorted({tp.topic for tp in partitions}))
        out: dict[TP, ListedOffset] = {}
        by_leader: dict[int, list[TP]] = {}
        for tp in partitions:
            topic = meta.topics.get(tp.topic)
            if topic is None or topic.error_code != errors.NONE:
                code = topic.error_code if topic else errors.UNKNOWN_TOPIC_OR_PARTITION
                out[tp] = ListedOffset(code, NO_OFFSET, -1)
            elif tp.partition not in topic.leaders:
                out[tp] = ListedOffset(errors.UNKNOWN_TOPIC_OR_PARTITION, NO_OFFSET, -1)
            elif topic.leaders[tp.partition] < 0:
                out[tp] = ListedOffset(errors.LEADER_NOT_AVAILABLE, NO_OFFSET, -1)
            else:
                by_leader.setdefault(topic.leaders[tp.partition], []).append(tp)
        timeout = i32Timedelta.parse(datetime.timedelta(seconds=self.timeout_s))
        for leader, tps in by_leader.items():

            def build(v: int, tps: list[TP] = tps) -> Any:
                topics = _tree(
                    requests(ApiKey.LIST_OFFSETS, v),
                    (ListOffsetsTopic, ListOffsetsPartition),
                    tps,
                    lambda _tp: {"current_leader_epoch": -1, "timestamp": spec},
                )
                return requests(ApiKey.LIST_OFFSETS, v).make(
                    ListOffsetsRequest,
                    replica_id=-1,
                    isolation_level=0,
                    topics=topics,
                    timeout=timeout,
                )

            _, resp = await self._call(await self._node(leader), ApiKey.LIST_OFFSETS, build)
            for t in resp.topics:
                for p in t.partitions:
                    out[TP(str(t.name), int(p.partition_index))] = ListedOffset(
                        int(p.error_code),
                        int(getattr(p, "offset", NO_OFFSET)),
                        int(getattr(p, "timestamp", -1)),
                    )
        return out
