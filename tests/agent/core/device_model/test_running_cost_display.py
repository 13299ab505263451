"""The running cost on the display: the station's own (2.1 local cost) as a driver reads it, and the CSMS's
figure winning over it while fresh (``DisplayMessages.local_cost``)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace

from agent.core.charging.running_cost import money_text
from agent.core.device_model.display_messages import CSMS_COST_FRESH_S, DisplayMessages
from agent.core.charging.model import ConnectorStatus
from agent.runtime.settings import Settings


def test_money_text_uses_the_currency_minor_units_in_decimal():
    assert money_text(Decimal("3.465"), "EUR") == "EUR 3.47"  # half up, where a float would give 3.46
    assert money_text(Decimal("512.4"), "JPY") == "JPY 512"
    assert money_text(Decimal("1.25"), "KWD") == "KWD 1.250"


class _Station:
    def __init__(self):
        self.statuses = {0: (ConnectorStatus.AVAILABLE, None), 1: (ConnectorStatus.CHARGING, None)}
        self.evses = {1: SimpleNamespace(evse_id=1, transaction=SimpleNamespace(ref="tx-1"))}
        self.show_text = None

    def add_listener(self, _changed):
        pass


class _Display:
    text = None

    def show(self, text):
        self.text = text


async def test_csms_running_cost_wins_while_fresh_then_the_local_one_shows_again(store):
    clock = SimpleNamespace(now=1000.0)
    clock.time = lambda: clock.now
    display = _Display()
    service = DisplayMessages(store, station=_Station(), display=display, settings=Settings(store), clock=clock)
    service.start()
    try:
        service.local_cost("tx-1", "EUR 1.00")
        await asyncio.sleep(0)
        assert display.text == "Cost: EUR 1.00"
        service.cost_updated("tx-1", 2.5)  # the CSMS's figure: it bills the session
        service.local_cost("tx-1", "EUR 1.10")
        await asyncio.sleep(0)
        assert display.text == "Cost: 2.50 EUR"
        clock.now += CSMS_COST_FRESH_S + 1  # the CSMS fell silent: the station's own figure keeps up
        service.local_cost("tx-1", "EUR 1.20")
        await asyncio.sleep(0)
        assert display.text == "Cost: EUR 1.20"
    finally:
        service.close()
