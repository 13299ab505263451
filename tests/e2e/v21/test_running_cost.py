"""The running cost on the display (OCPP 2.1 block I, local cost): with a default tariff, the station shows the
cost so far of the running transaction, computed by itself, and the figure grows while power flows."""

from __future__ import annotations

from decimal import Decimal

from ocpp.v21 import call as call21

from tests.harness import running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events, reach_status

TARIFF = {"tariff_id": "T-display", "currency": "EUR",
          "energy": {"prices": [{"price_kwh": 50}], "tax_rates": [{"type": "VAT", "tax": 20}]},  # 0.12 EUR/s at 7.2 kW
          "fixed_fee": {"prices": [{"price_fixed": 0.5}]}}


def shown_cost(agent) -> Decimal | None:
    """The running cost on the mock's display ("Cost: EUR 3.47"), or None if the display shows something else."""
    text = agent.hal.display.text or ""
    return Decimal(text.split()[-1]) if text.startswith("Cost: EUR ") else None


async def test_v21_running_cost_on_the_display_grows_while_power_flows(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=0, tariff=TARIFF))).status == "Accepted"
        await charge(agent, csms)
        await wait_until(lambda: shown_cost(agent) is not None and shown_cost(agent) > Decimal("0.60"), timeout=10)
        first = shown_cost(agent)
        assert first == first.quantize(Decimal("0.01"))  # to the cent, as the currency has it
        await wait_until(lambda: (shown_cost(agent) or 0) >= first + Decimal("0.10"), timeout=10)
        agent.hal.tap(CARD)  # the driver stops: the Ended event's cost is at least what the display said
        ended = (await csms.wait_for(lambda: [e for e in events(csms) if e["eventType"] == "Ended"]))[0]
        assert Decimal(str(ended["costDetails"]["totalCost"]["total"]["inclTax"])) >= first + Decimal("0.10")
        assert csms.schema_errors == []
