"""Driving a station over OCPP 1.6 and reading what the simulated CSMS received.

The same names as :mod:`tests.harness.v201`, in 1.6 words: a connector's ``statuses``, ``reach_status``,
and a whole session started with ``charge_session``; then the firmware and diagnostics messages.
"""

from __future__ import annotations

import time

from ocpp.v16 import call as call16

from agent.runtime.clock import format_iso

#: The RFID card the tests tap.
CARD = "04A1B2C3"


def statuses(csms, connector=1):
    """The statuses of ``connector`` in every StatusNotification, oldest first."""
    return [r.payload["status"] for r in csms.calls("StatusNotification") if r.payload["connectorId"] == connector]


async def reach_status(csms, status, connector=1, timeout=5.0):
    """Wait until the last status the CSMS heard of ``connector`` is ``status``."""
    await csms.wait_for(lambda: statuses(csms, connector)[-1:] == [status], timeout=timeout)


async def charge_session(agent, csms, *, watts=7200.0):
    """Plug, tap, EV requests energy: returns the StartTransaction the CSMS received."""
    hal = agent.hal
    hal.plug(1)
    await reach_status(csms, "Preparing")
    hal.tap(CARD)
    start = (await csms.wait_for_call("StartTransaction"))[0]
    hal.ev_charge(1, True)
    hal.set_power(1, watts)
    await reach_status(csms, "Charging")
    return start


# ------------------------------------------------------------------ firmware and diagnostics


def update(location, **kwargs):
    """An UpdateFirmware.req for the image at ``location``, to be retrieved now."""
    return call16.UpdateFirmware(location=location, retrieve_date=format_iso(time.time()), **kwargs)


def firmware_statuses(csms):
    """The status of every FirmwareStatusNotification, oldest first."""
    return [r.payload["status"] for r in csms.calls("FirmwareStatusNotification")]


def diagnostics_statuses(csms):
    """The status of every DiagnosticsStatusNotification, oldest first."""
    return [r.payload["status"] for r in csms.calls("DiagnosticsStatusNotification")]


async def final_firmware_status(csms, timeout=8.0):
    """Wait for a terminal firmware status; every status so far."""
    terminal = {"Installed", "InstallationFailed", "DownloadFailed"}
    await csms.wait_for(lambda: terminal & set(firmware_statuses(csms)), timeout=timeout)
    return firmware_statuses(csms)
