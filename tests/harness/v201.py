"""Driving a station over OCPP 2.0.1 and reading what the simulated CSMS received.

The same names as :mod:`tests.harness.v16`, in 2.0.1 words: an EVSE's ``statuses``, ``reach_status``,
the TransactionEvent ``events``, and a session started with ``charge``.
"""

from __future__ import annotations

from tests.harness.agent import agent_config, wait_until

#: The RFID card the tests tap.
CARD = "04A1B2C3"


def config(tmp_path, csms, **variables):
    """An agent config in ``csms``'s version (2.0.1, or 2.1 which extends it) that sends TransactionEvent
    updates every second."""
    return agent_config(tmp_path, csms.url, ocpp_version=csms.ocpp_version,
                        variables={"SampledDataCtrlr.TxUpdatedInterval": 1, **variables})


def statuses(csms, evse=1):
    """The connector statuses of ``evse`` in every StatusNotification, oldest first."""
    return [r.payload["connectorStatus"] for r in csms.calls("StatusNotification") if r.payload["evseId"] == evse]


async def reach_status(csms, status, evse=1, timeout=5.0):
    """Wait until the last status the CSMS heard of ``evse`` is ``status``."""
    await csms.wait_for(lambda: statuses(csms, evse)[-1:] == [status], timeout=timeout)


def events(csms):
    """The payload of every TransactionEvent, oldest first."""
    return [r.payload for r in csms.calls("TransactionEvent")]


async def charge(agent, csms):
    """Plug, tap, EV requests 7.2 kW: returns once the transaction started and the contactor closed."""
    agent.hal.plug(1)
    await reach_status(csms, "Occupied")
    agent.hal.tap(CARD)
    await csms.wait_for(lambda: any(e["eventType"] == "Started" for e in events(csms)))
    agent.hal.ev_charge(1, True)
    agent.hal.set_power(1, 7200)
    await wait_until(lambda: agent.hal.evse(1).contactor.closed)
