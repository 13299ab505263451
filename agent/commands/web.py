"""The body of ``ocpp-agent web``: checks that must pass before the dashboard listens, then serve.

Refuses (exit 1, naming ``web.password``) to listen on a non-loopback address without a password,
and says how to install aiohttp when the optional extra is missing.
"""

from __future__ import annotations

import sys

from agent.config.web import exposure_problem, parse_listen


def run_web_command(config, *, listen: str | None = None) -> int:
    """Serve the dashboard for ``config`` on ``listen`` (default ``[web] listen``); the exit status."""
    try:
        parse_listen(listen or config.web.listen)
        problem = exposure_problem(config.web, listen)
    except ValueError as exc:
        print(f"ocpp-agent web: --listen: {exc}", file=sys.stderr)
        return 1
    if problem is not None:
        print(f"ocpp-agent web: {problem}", file=sys.stderr)
        return 1
    try:
        from agent.web.server import run_web
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("aiohttp"):
            raise
        print("ocpp-agent web: the dashboard needs aiohttp: install ocpp-agent[web] "
              "(pip install 'ocpp-agent[web]')", file=sys.stderr)
        return 1
    from agent.runtime.logging_setup import configure_logging

    configure_logging(config.logging.level, config.logging.levels)
    try:
        return run_web(config, listen)
    except OSError as exc:  # the port is taken, the address is not this machine's, a TLS file is unreadable
        print(f"ocpp-agent web: cannot serve on {listen or config.web.listen}: {exc}", file=sys.stderr)
        return 1
