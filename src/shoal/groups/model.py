"""Values of the classic group protocol: states, configuration, members and results.

Plain data only; `groups/group.py` (with the group_*.py modules it composes) holds the state
machine that moves them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

# Kafka's JoinGroupRequest.UNKNOWN_MEMBER_ID.
UNKNOWN_MEMBER_ID = ""
# KIP-394: a member that joined but whose join has not completed yet is expelled after this.
NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Kafka's group.* broker settings. Defaults follow Kafka except the initial rebalance
    delay: Kafka waits 3000 ms for more members before the first generation of an empty group;
    Shoal waits 300 ms, enough for members started together to land in one generation without
    making every first start (and every test) three seconds slower."""

    initial_rebalance_delay_ms: int = 300
    min_session_timeout_ms: int = 6_000
    max_session_timeout_ms: int = 1_800_000
    max_size: int = 1_000  # group.max.size (Kafka: unbounded); members + pending members
    offset_metadata_max_bytes: int = 4096


Protocols = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class JoinRequest:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    require_known_member_id: bool  # JoinGroup v4+


@dataclass(frozen=True, slots=True)
class JoinedMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: int
    member_id: str
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[JoinedMember, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


JoinReply = Callable[[JoinResult], None]
SyncReply = Callable[[SyncResult], None]


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    # Deadline of the next heartbeat (ms on the group's clock).
    deadline_ms: int = 0
    # KIP-394: joined but not yet part of a completed generation.
    is_new: bool = False
    join_reply: JoinReply | None = field(default=None, repr=False)
    sync_reply: SyncReply | None = field(default=None, repr=False)

    @property
    def awaiting_join(self) -> bool:
        return self.join_reply is not None

    def metadata(self, protocol: str | None) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]


@dataclass(frozen=True, slots=True)
class MemberView:
    """What DescribeGroups shows of a member."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupView:
    """DescribeGroups' summary: metadata and assignments only when Stable, as in Kafka."""

    group_id: str
    state: str
    protocol_type: str
    protocol_data: str
    members: tuple[MemberView, ...]
    generation: int
    leader: str | None
