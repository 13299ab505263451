"""OCPP 2.0.1 block L, firmware management: UpdateFirmware over the core's firmware job."""

from __future__ import annotations


class FirmwareHandlers201:
    """Mixed into the 2.0.1 adapter."""
