"""Free loopback ports for the processes that tests, benchmarks and `shoal verify` start.

A port the kernel hands out for a bind to port 0 comes from Linux's ephemeral range
(32768-60999), the same range it draws the local ports of outgoing connections from: between
the check and the child's bind, any client connection on the machine can take it, and the child
then exits with "address already in use" (a CI run failed that way). Ports here come from below
that range, where only another explicit bind can collide; callers that start a child still retry
on that error (see `ADDRESS_IN_USE`).
"""

from __future__ import annotations

import random
import socket

PORT_RANGE = range(20000, 32000)
# What a Shoal agent (and most servers) print when a bind fails this way.
ADDRESS_IN_USE = "address already in use"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now, all outside the ephemeral range."""
    chosen: list[int] = []
    for _ in range(100 * count + 1000):
        if len(chosen) == count:
            return chosen
        port = random.choice(PORT_RANGE)
        if port not in chosen and _bindable(host, port):
            chosen.append(port)
    if len(chosen) == count:
        return chosen
    raise RuntimeError(f"no {count} free ports in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
