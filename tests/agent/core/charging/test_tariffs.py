"""The tariff model and the local cost calculator: exact Decimal results."""

from decimal import Decimal

import pytest

from agent.core.charging.tariffs import TariffBook, TariffRefused, Usage, calculate, check

D = Decimal
VAT = [{"type": "VAT", "tax": 20}]


def tariff(**parts):
    return {"tariff_id": "T1", "currency": "EUR", **parts}


def test_energy_time_and_fixed_fee_with_tax():
    t = tariff(energy={"prices": [{"price_kwh": 0.3}], "tax_rates": VAT},
               charging_time={"prices": [{"price_minute": 0.05}]},
               fixed_fee={"prices": [{"price_fixed": 1}], "tax_rates": VAT})
    cost = calculate(t, Usage(D("12345"), 600))
    assert cost.parts["energy"].excl_tax == D("3.70") and cost.parts["energy"].incl_tax == D("4.44")
    assert cost.parts["charging_time"].excl_tax == D("0.50") and cost.parts["charging_time"].incl_tax is None
    assert cost.parts["fixed_fee"].incl_tax == D("1.20")
    assert (cost.total_excl_tax, cost.total_incl_tax, cost.type_of_cost) == (D("5.20"), D("6.14"), "NormalCost")
    assert cost.currency == "EUR" and isinstance(cost.total_excl_tax, Decimal)


def test_energy_tiers_by_consumed_energy():
    t = tariff(energy={"prices": [{"price_kwh": 0.4, "conditions": {"max_energy": 10000}},
                                  {"price_kwh": 0.25, "conditions": {"min_energy": 10000}}]})
    assert calculate(t, Usage(D("15000"), 0)).total_excl_tax == D("5.25")  # 10 kWh * 0.40 + 5 kWh * 0.25
    assert calculate(t, Usage(D("5000"), 0)).total_excl_tax == D("2.00")


def test_stacked_taxes_and_idle_time():
    t = tariff(idle_time={"prices": [{"price_minute": 0.1}],
                          "tax_rates": [{"type": "A", "tax": 10}, {"type": "B", "tax": 10, "stack": 1}]})
    cost = calculate(t, Usage(D(0), 0, idle_s=600))
    assert cost.parts["idle_time"].excl_tax == D("1.00") and cost.total_incl_tax == D("1.21")


def test_min_and_max_cost():
    t = tariff(energy={"prices": [{"price_kwh": 0.5}]}, min_cost={"excl_tax": 2, "incl_tax": 2.4},
               max_cost={"excl_tax": 10})
    low = calculate(t, Usage(D("1000"), 0))
    assert (low.total_excl_tax, low.total_incl_tax, low.type_of_cost) == (D("2.00"), D("2.40"), "MinCost")
    high = calculate(t, Usage(D("100000"), 0))
    assert (high.total_excl_tax, high.type_of_cost) == (D("10.00"), "MaxCost")
    assert calculate(t, Usage(D("10000"), 0)).type_of_cost == "NormalCost"


@pytest.mark.parametrize("t, status", [
    (tariff(energy={"prices": [{"price_kwh": 0.3, "conditions": {"start_time_of_day": "08:00"}}]}),
     "ConditionNotSupported"),
    (tariff(charging_time={"prices": [{"price_minute": 0.1, "conditions": {"min_power": 1000}}]}),
     "ConditionNotSupported"),
    (tariff(energy={"prices": [{"price_kwh": 0.1}] * 11}), "TooManyElements"),
    (tariff(reservation_fixed={"prices": [{"price_fixed": 1}]}), "Rejected"),
])
def test_what_cannot_be_priced_is_refused(t, status):
    with pytest.raises(TariffRefused) as refused:
        check(t)
    assert refused.value.status == status


class Store(dict):
    def put(self, key, value):
        self[key] = value

    def delete(self, key):
        self.pop(key, None)


def test_book_sets_clears_and_binds():
    book = TariffBook(Store(), evse_ids=lambda: [1, 2])
    t = tariff(energy={"prices": [{"price_kwh": 0.3}]})
    assert book.set_default(0, t) == "Accepted" and set(book.defaults()) == {1, 2}
    with pytest.raises(TariffRefused) as refused:
        book.set_default(1, {**t, "currency": "USD"})
    assert refused.value.status == "DuplicateTariffId"
    assert book.bind("tx", 1) == t
    assert book.clear(tariff_ids=["T1", "T9"], evse_id=2) == [("T1", True), ("T9", False)]
    assert set(book.defaults()) == {1}
    assert book.clear(tariff_ids=None, evse_id=None) == [("T1", True)] and book.defaults() == {}
    assert book.bind("tx", 1) == t  # fixed at the first ask: clearing the default does not change it


def test_a_tariff_change_prices_each_period_with_its_own_tariff():
    book = TariffBook(Store(), evse_ids=lambda: [1])
    book.set_default(1, tariff(energy={"prices": [{"price_kwh": 0.3}]}, fixed_fee={"prices": [{"price_fixed": 1}]}))
    book.note_state("tx", seq_no=1, charging=True, timestamp=100.0)  # not bound yet: not counted
    assert book.bind("tx", 1)["tariff_id"] == "T1"
    book.note_state("tx", seq_no=2, charging=True, timestamp=100.0)
    with pytest.raises(TariffRefused) as refused:
        book.change("tx", {"tariff_id": "T2", "currency": "USD", "energy": {"prices": [{"price_kwh": 1}]}},
                    at=160.0, energy_Wh=1000.0)
    assert refused.value.status == "NoCurrencyChange"
    dearer = {"tariff_id": "T2", "currency": "EUR", "energy": {"prices": [{"price_kwh": 0.5}]},
              "charging_time": {"prices": [{"price_minute": 0.1}]}}
    book.change("tx", dearer, at=160.0, energy_Wh=1000.0)
    cost, usage, periods = book.cost("tx", 1, started_at=100.0, stopped_at=280.0, energy_Wh=3000.0)
    assert usage == Usage(D("3000.0"), 180) and [p.cost.tariff_id for p in periods] == ["T1", "T2"]
    assert [p.usage for p in periods] == [Usage(D("1000.0"), 60), Usage(D("2000.0"), 120)]
    assert [p.started_at for p in periods] == [100.0, 160.0]
    # T1: 1 kWh * 0.30 + fixed 1.00; T2: 2 kWh * 0.50 + 2 minutes * 0.10
    assert periods[0].cost.total_excl_tax == D("1.30") and periods[1].cost.total_excl_tax == D("1.20")
    assert (cost.tariff_id, cost.total_excl_tax, cost.total_incl_tax) == ("T2", D("2.50"), None)
    assert cost.parts["energy"].excl_tax == D("1.30") and cost.parts["charging_time"].excl_tax == D("0.20")
    with pytest.raises(TariffRefused) as refused:
        book.change("tx", tariff(idle_time={"prices": [{"price_minute": 1, "conditions": {"min_power": 1}}]}),
                    at=200.0, energy_Wh=2000.0)
    assert refused.value.status == "ConditionNotSupported"


def test_a_driver_tariff_prices_its_tokens_next_transaction_from_the_start():
    book = TariffBook(Store(), evse_ids=lambda: [1])
    book.set_default(1, tariff(energy={"prices": [{"price_kwh": 0.3}]}))
    driver = {"tariff_id": "D1", "currency": "EUR", "energy": {"prices": [{"price_kwh": 0.2}]}}
    with pytest.raises(TariffRefused):
        book.offer_driver_tariff("CARD", {**driver, "reservation_time": {"prices": [{"price_minute": 1}]}}, now=0.0)
    assert book.take_driver_tariff("tx", 1, "CARD", now=1.0) is None  # a refused one is not kept
    book.offer_driver_tariff("CARD", driver, now=10.0)
    assert book.take_driver_tariff("tx", 1, "OTHER", now=11.0) is None
    assert book.take_driver_tariff("tx", 1, "CARD", now=12.0) == driver
    assert book.bind("tx", 1) == driver and book.take_driver_tariff("tx2", 1, "CARD", now=13.0) is None  # used up
    book.offer_driver_tariff("CARD", driver, now=20.0)
    assert book.take_driver_tariff("tx3", 1, "CARD", now=20.0 + 601) is None  # too old: the default prices it
