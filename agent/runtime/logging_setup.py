"""Logging set-up: plain lines to stderr (journald adds timestamps), levels per logger."""

from __future__ import annotations

import logging
import os
import sys

# The `ocpp` library logs every frame at INFO; our message log already keeps them.
# pymodbus warns on every poll while a port is missing; our meter-offline fault says it once.
_QUIET_BY_DEFAULT = {"ocpp": "warning", "websocket": "warning", "pymodbus": "error"}


def configure_logging(level: str = "info", levels: dict[str, str] | None = None) -> None:
    """(Re)configure the root logger; safe to call again on SIGHUP."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ocpp_agent", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._ocpp_agent = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(_format()))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, value in {**_QUIET_BY_DEFAULT, **(levels or {})}.items():
        logging.getLogger(name).setLevel(value.upper())


def _format() -> str:
    # Under systemd journald stamps each line; on a terminal we add the time ourselves.
    if os.environ.get("JOURNAL_STREAM"):
        return "%(levelname)s %(name)s: %(message)s"
    return "%(asctime)s %(levelname)s %(name)s: %(message)s"
