"""Ports for child processes come from below the ephemeral range and are free when chosen."""

from __future__ import annotations

import socket

import pytest

from shoal.common import ports
from shoal.common.ports import PORT_RANGE, free_port, free_ports


def _ephemeral_range() -> range:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(part) for part in f.read().split())
    return range(low, high + 1)


def test_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    ephemeral = _ephemeral_range()
    chosen = free_ports(50)
    assert len(set(chosen)) == 50
    assert all(port in PORT_RANGE and port not in ephemeral for port in chosen)


def test_a_bound_port_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", PORT_RANGE.start))
        # The first draw is the held port, the next a free one: only the free one comes back.
        draws = iter([PORT_RANGE.start, PORT_RANGE.start, PORT_RANGE.start + 1])
        monkeypatch.setattr("shoal.common.ports.random.choice", lambda _seq: next(draws))
        assert free_port() == PORT_RANGE.start + 1


def test_too_few_free_ports_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_bindable", lambda _host, _port: False)
    with pytest.raises(RuntimeError, match="no 2 free ports"):
        free_ports(2)
