"""OCPP 2.0.1 block B, network connection profiles: SetNetworkProfile over ``agent.core.network``."""

from __future__ import annotations


class NetworkHandlers201:
    """Mixed into the 2.0.1 adapter."""
