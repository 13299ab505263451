"""OCPP 2.0.1 block N, diagnostics: GetLog over ``agent.core.diagnostics``."""

from __future__ import annotations


class DiagnosticsHandlers201:
    """Mixed into the 2.0.1 adapter."""
