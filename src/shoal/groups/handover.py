"""Group handover between agents: when the live list changes, which groups this agent drops and
whether it waits before loading the groups it now owns (docs/cluster.md).

A membership listener. Agents see a change up to one heartbeat apart, so the agent that gains a
group may load it from the store while the previous owner still runs it; the new owner then
holds the groups it does not hold yet (`GroupCoordinator.hold_new_groups`) for the handover
time. The rules, all here:

- A lone agent, and one that has never had peers, has no previous owner to wait for: no hold.
- A change that only adds agents (no (agent id, node id) pair left) takes groups from this
  agent but gives it none: no hold. Keyed by node id too, since the ring is, and an agent that
  registered again may have got another node id.
- Anything else (an agent left, or this agent joined a cluster) holds.
- A joining agent tells its peers it is here (`cluster/membership_notify.py`); a peer answers
  after it has dropped the groups the joiner now owns, so when every peer answered, none is
  left to wait for and the hold ends at once (`announced`).

Every change also drops the groups another agent now owns (`release_unowned`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class LiveAgent(Protocol):
    @property
    def agent_id(self) -> str: ...

    @property
    def node_id(self) -> int: ...


class LiveView(Protocol):
    """What the handover reads of the cluster view (declared here: groups sit below cluster)."""

    def live(self) -> Sequence[LiveAgent]: ...


class HandoverTarget(Protocol):
    """The part of `GroupCoordinator` the handover drives."""

    def hold_new_groups(self) -> None: ...

    def end_hold(self) -> None: ...

    def release_unowned(self) -> list[str]: ...


class GroupHandover:
    def __init__(self, groups: HandoverTarget) -> None:
        self._groups = groups
        self._peers_seen = False
        self._live_ids: set[tuple[str, int]] | None = None

    def on_view_change(self, view: LiveView) -> None:
        """The membership listener (also called once with the first view)."""
        live = {(a.agent_id, a.node_id) for a in view.live()}
        only_joined = self._live_ids is not None and self._live_ids <= live
        self._live_ids = live
        self._peers_seen = self._peers_seen or len(live) > 1
        if self._peers_seen and not only_joined:
            self._groups.hold_new_groups()
        released = self._groups.release_unowned()
        if released:
            log.info("membership changed: %d groups now coordinated elsewhere", len(released))

    def announced(self, peers: int, answered: int) -> None:
        """This agent told `peers` peers it joined and `answered` of them answered."""
        if answered == peers:
            self._groups.end_hold()
