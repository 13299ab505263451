"""The daemon's status socket (``<data_dir>/agent.sock``) and its clients.

``client`` is the side other processes use (``ocpp-agent status``, ``ocpp-agent web``); it imports
nothing of the agent's runtime. ``server`` and ``snapshot`` run inside the daemon. Where the socket is
and its line limit are here, shared by both sides, so the daemon does not load the client.
"""

from __future__ import annotations

from pathlib import Path

SOCKET_NAME = "agent.sock"
# One snapshot line stays far below this; it bounds what a confused peer can make us buffer.
MAX_LINE = 1024 * 1024


def socket_path(data_dir: Path | str) -> Path:
    """Where the agent with this ``data_dir`` serves its status: ``<data_dir>/agent.sock``."""
    return Path(data_dir) / SOCKET_NAME
