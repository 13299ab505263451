"""[web]: the local dashboard (``ocpp-agent web``), a process of its own beside the daemon.

The section lives in the daemon's config file, so ``run`` and ``check-config`` accept and check it;
only ``ocpp-agent web`` acts on it. A non-loopback ``listen`` without a password is refused when the
dashboard starts (:func:`exposure_problem`), not by ``check-config``: the daemon runs fine with it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

DEFAULT_LISTEN = "127.0.0.1:8080"


@dataclass(frozen=True)
class WebConfig:
    """[web]: where the dashboard listens, its password (HTTP Basic, user ``admin``) and optional TLS."""

    listen: str = DEFAULT_LISTEN
    password: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        problems = []
        try:
            parse_listen(self.listen)
        except ValueError as exc:
            problems.append(("listen", str(exc)))
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            missing = "tls_key_file" if self.tls_cert_file else "tls_cert_file"
            problems.append((missing, "TLS needs both tls_cert_file and tls_key_file (or neither)"))
        for key in ("tls_cert_file", "tls_key_file"):
            path = getattr(self, key)
            if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
                problems.append((key, f"file not found or not readable: {path}"))
        return problems

    @property
    def tls(self) -> bool:
        """True when the dashboard serves HTTPS."""
        return bool(self.tls_cert_file and self.tls_key_file)


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8080`` for IPv6) into host and port; ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): only this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0-like wildcard: reachable from elsewhere


def exposure_problem(web: WebConfig, listen: str | None = None) -> str | None:
    """Why the dashboard must not start on ``listen`` (default ``web.listen``), or None.

    A page reachable from the network without a password would show the station to anyone there.
    """
    host, _ = parse_listen(listen or web.listen)
    if not is_loopback(host) and not web.password:
        return (f"web.password: listening on {listen or web.listen}, a non-loopback address, needs a password "
                f"(set [web] password, or listen on 127.0.0.1)")
    return None
