"""The display's running cost after a ChangeTransactionTariff: each period priced with its own tariff,
as the Ended event's costDetails are (not the whole session at the new tariff)."""

from decimal import Decimal
from types import SimpleNamespace

from agent.core.charging.running_cost import RunningCost
from agent.core.charging.tariffs import TariffBook


class Store(dict):
    def put(self, key, value):
        self[key] = value

    def delete(self, key):
        self.pop(key, None)


class Meter:
    def __init__(self):
        self.last_reading, self.listeners = None, []

    def add_listener(self, listener):
        self.listeners.append(listener)

    def remove_listener(self, listener):
        self.listeners.remove(listener)

    def publish(self, energy_Wh):
        self.last_reading = SimpleNamespace(energy_import_Wh=energy_Wh)
        for listener in list(self.listeners):
            listener(1, self.last_reading)


def test_running_cost_prices_each_period_with_its_tariff():
    now = [100.0]
    meter = Meter()
    tx = SimpleNamespace(ref="tx", started_at=100.0, meter_start_Wh=5000.0)
    station = SimpleNamespace(evses={1: SimpleNamespace(evse_id=1, transaction=tx)},
                              hal=SimpleNamespace(evse=lambda _id: SimpleNamespace(meter=meter)),
                              clock=SimpleNamespace(time=lambda: now[0]), add_listener=lambda _f: None)
    book = TariffBook(Store(), evse_ids=lambda: [1])
    book.set_default(1, {"tariff_id": "T1", "currency": "EUR", "energy": {"prices": [{"price_kwh": 0.3}]}})
    shown = []
    running = RunningCost(station, tariffs=book, show=lambda ref, total, currency: shown.append((total, currency)))
    running.follow()
    meter.publish(6000.0)  # 1 kWh at 0.30
    assert shown[-1] == (Decimal("0.30"), "EUR")
    book.change("tx", {"tariff_id": "T2", "currency": "EUR", "energy": {"prices": [{"price_kwh": 1}]}},
                at=now[0], energy_Wh=1000.0)
    meter.publish(8000.0)  # then 2 kWh at 1.00
    assert shown[-1] == (Decimal("2.30"), "EUR")
