"""Settings that differ by OCPP version: 2.0.1's own defaults, and a 2.0.1-only interval 1.6 ties to another key."""

from agent.runtime.settings import Settings
from tests.harness.fakes import MemoryStore

ENERGY = ("Energy.Active.Import.Register",)


def test_settings_versions_2_0_1_puts_the_energy_register_in_started_and_ended():
    v201 = Settings(MemoryStore(), ocpp_version="2.0.1")
    assert (v201["tx_started_measurands"], v201["stop_txn_sampled_data"], v201["tx_ended_interval_s"]) == (
        ENERGY, ENERGY, 0)
    v16 = Settings(MemoryStore(), ocpp_version="1.6")
    assert (v16["tx_started_measurands"], v16["stop_txn_sampled_data"]) == ((), ())  # 1.6: meterStart/meterStop


def test_settings_versions_1_6_samples_stop_data_every_meter_value_sample_interval():
    store = MemoryStore()
    v16 = Settings(store, ocpp_version="1.6")
    v16.set("meter_value_sample_interval_s", 15)
    assert v16["tx_ended_interval_s"] == 15
    v16.set("tx_ended_interval_s", 5)  # set (config file, [ocpp201.variables]): its own value from then on
    v16.set("meter_value_sample_interval_s", 30)
    assert v16["tx_ended_interval_s"] == 5
    assert Settings(store, ocpp_version="1.6")["tx_ended_interval_s"] == 5  # persisted


def test_settings_versions_2_0_1_intervals_are_independent():
    v201 = Settings(MemoryStore(), ocpp_version="2.0.1", initial={"meter_value_sample_interval_s": 10})
    assert v201["tx_ended_interval_s"] == 0
    v201.set("tx_ended_interval_s", 120)
    assert (v201["meter_value_sample_interval_s"], v201["tx_ended_interval_s"]) == (10, 120)


def test_settings_versions_2_1_has_the_2_0_1_defaults_and_independent_intervals():
    v21 = Settings(MemoryStore(), ocpp_version="2.1", initial={"meter_value_sample_interval_s": 10})
    assert (v21["tx_started_measurands"], v21["stop_txn_sampled_data"], v21["tx_ended_interval_s"]) == (
        ENERGY, ENERGY, 0)
    v21.set("meter_value_sample_interval_s", 15)  # 1.6 would tie the ended interval to it
    assert v21["tx_ended_interval_s"] == 0
