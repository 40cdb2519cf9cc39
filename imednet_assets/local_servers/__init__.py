"""Real destination servers on loopback, for the tests, the benchmark and `demo --local-servers`.

Each is the server the destination's tests run against (see the README): nx-27017 for MongoDB,
the fakesnow server for Snowflake, FalkorDB for the graph, and a throw-away database on the local
PostgreSQL. They come with the development dependencies, not with the package's runtime ones.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
