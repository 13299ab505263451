"""OCPP 2.0.1 block N, monitoring and customer information, over ``agent.core.monitoring``."""

from __future__ import annotations


class MonitoringHandlers201:
    """Mixed into the 2.0.1 adapter."""
