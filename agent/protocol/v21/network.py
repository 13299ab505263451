"""OCPP 2.1 block B, network connection profiles: SetNetworkProfile as in 2.0.1, in 2.1's words.

2.1 makes ``ocppVersion`` optional (the version is settled in the WebSocket handshake) and adds
``identity`` and ``basicAuthPassword`` to a profile. A profile this station would connect with
speaks 2.1 (no ocppVersion, or OCPP21); one that changes the station's identity or carries a
password of its own is refused with the reason: each profile slot holds a URL and a security
profile, and the station keeps one identity and one password (BasicAuthPassword).
"""

from __future__ import annotations

from agent.protocol.v201.network import NetworkHandlers201, unsupported_profile


class NetworkHandlers21(NetworkHandlers201):
    """Mixed into the 2.1 adapter before the 2.0.1 handlers it refines."""

    def network_profile_problem(self, data: dict) -> str | None:
        """Why this station cannot use a 2.1 NetworkConnectionProfile (snake_case dict), or None."""
        version = data.get("ocpp_version")
        if version not in (None, "OCPP21"):
            return f"this station speaks OCPP 2.1 here, not {version}"
        identity = data.get("identity")
        if identity is not None and identity != self.id:
            return "a profile with another identity is not supported: the station keeps its identity"
        if data.get("basic_auth_password") is not None:
            return "a password per profile is not supported: the station has one (BasicAuthPassword)"
        return unsupported_profile(data, version_checked=True)
