"""OCPP 2.0.1 block N, diagnostics: GetLog / LogStatusNotification over ``agent.core.management.log_upload``.

2.0.1 words them as the shared handlers do (``agent.protocol.common.log_upload``):
nothing to add but the name of the mixin.
"""

from __future__ import annotations

from agent.protocol.common.log_upload import GetLogHandlers


class DiagnosticsHandlers201(GetLogHandlers):
    """Mixed into the 2.0.1 adapter: GetLog with 2.0.1's statuses unchanged."""
