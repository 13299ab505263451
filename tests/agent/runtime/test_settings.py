"""Tests of agent.runtime.settings: the catalog, value conversion and the persisted settings store."""

import logging

import pytest
from ocpp.v16 import enums as v16

from agent.runtime.settings import (
    CSL,
    MEASURANDS,
    PHASES,
    SETTINGS,
    SETTINGS_BY_NAME,
    SETTINGS_BY_OCPP16,
    SETTINGS_BY_OCPP201,
    SettingDef,
    Settings,
    coerce_setting,
    render_setting,
)
from agent.runtime.store import StateStore
from tests.harness.fakes import MemoryStore

# OCPP 1.6 section 9.1: every Core profile key and whether it is read-only here.
CORE_KEYS = {
    "AllowOfflineTxForUnknownId": False,
    "AuthorizationCacheEnabled": False,
    "AuthorizeRemoteTxRequests": False,
    "BlinkRepeat": False,
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "ConnectorPhaseRotationMaxLength": True,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LightIntensity": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MaxEnergyOnInvalidId": False,
    "MeterValuesAlignedData": False,
    "MeterValuesAlignedDataMaxLength": True,
    "MeterValuesSampledData": False,
    "MeterValuesSampledDataMaxLength": True,
    "MeterValueSampleInterval": False,
    "MinimumStatusDuration": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnEVSideDisconnect": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnAlignedDataMaxLength": True,
    "StopTxnSampledData": False,
    "StopTxnSampledDataMaxLength": True,
    "SupportedFeatureProfiles": True,
    "SupportedFeatureProfilesMaxLength": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": False,
    "WebSocketPingInterval": False,
}

# Names the protocol layer and the config file already use.
LEGACY_NAMES = (
    "heartbeat_interval_s", "websocket_ping_interval_s", "retry_backoff_wait_minimum_s",
    "retry_backoff_random_range_s", "retry_backoff_repeat_times", "meter_value_sample_interval_s",
    "clock_aligned_data_interval_s", "transaction_message_attempts", "transaction_message_retry_interval_s",
    "connection_timeout_s",
)


def defn(name):
    return SETTINGS_BY_NAME[name]


# ------------------------------------------------------------------ catalog


# Keys of the other 1.6 feature profiles, added as those profiles land.
OTHER_PROFILE_KEYS = {"LocalAuthListEnabled": False, "LocalAuthListMaxLength": True,
                      "SendLocalListMaxLength": True, "ReserveConnectorZeroSupported": True,
                      "ChargeProfileMaxStackLevel": True, "ChargingScheduleAllowedChargingRateUnit": True,
                      "ChargingScheduleMaxPeriods": True, "MaxChargingProfilesInstalled": True,
                      # the security extension's keys (AuthorizationKey is write-only, not read-only)
                      "AuthorizationKey": False, "CpoName": False, "SecurityProfile": False,
                      "CertSigningWaitMinimum": False, "CertSigningRepeatTimes": False,
                      "CertificateSignedMaxChainSize": True, "CertificateStoreMaxLength": True,
                      "AdditionalRootCertificateCheck": True}


def test_guard_refuses_a_change_and_stores_nothing():
    store = MemoryStore()
    settings = Settings(store)

    def only_up(current, new):
        if new <= current:
            raise ValueError("only upgrades")

    settings.guard("security_profile", only_up)
    assert settings.set("security_profile", "2") == 2
    with pytest.raises(ValueError, match="only upgrades"):
        settings.set("security_profile", "1")
    assert settings["security_profile"] == 2 and store["setting:security_profile"] == 2


def test_catalog_has_every_core_key_with_its_access():
    assert {key: SETTINGS_BY_OCPP16[key].readonly for key in CORE_KEYS} == CORE_KEYS
    assert set(SETTINGS_BY_OCPP16) - set(OTHER_PROFILE_KEYS) == set(CORE_KEYS)
    for key, readonly in OTHER_PROFILE_KEYS.items():
        if key in SETTINGS_BY_OCPP16:
            assert SETTINGS_BY_OCPP16[key].readonly is readonly, key


def test_catalog_core_keys_match_the_ocpp_library_in_spec_order():
    library_core = [k.value for k in v16.ConfigurationKey][: len(CORE_KEYS)]
    ours = [s.ocpp16 for s in SETTINGS if s.ocpp16 and s.ocpp16 not in OTHER_PROFILE_KEYS]
    assert ours == library_core == list(CORE_KEYS)


def test_catalog_keeps_existing_names():
    assert set(LEGACY_NAMES) <= set(SETTINGS_BY_NAME)


def test_catalog_names_are_unique_and_snake_case():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(name.replace("_", "").isalnum() and name[0].islower() for name in names)
    assert len(SETTINGS_BY_OCPP201) == len([s for s in SETTINGS if s.ocpp201])


def test_catalog_defaults_fit_their_own_rules():
    from agent.runtime.settings import _convert

    for definition in SETTINGS:
        assert _convert(definition, definition.default) == definition.default, definition.name


def test_catalog_list_limits_match_their_max_length_keys():
    for key in ("ConnectorPhaseRotation", "MeterValuesAlignedData", "MeterValuesSampledData",
                "StopTxnAlignedData", "StopTxnSampledData", "SupportedFeatureProfiles"):
        assert SETTINGS_BY_OCPP16[key].max_items == SETTINGS_BY_OCPP16[key + "MaxLength"].default


def test_catalog_enumerations_match_ocpp_16():
    assert MEASURANDS == tuple(m.value for m in v16.Measurand)
    assert PHASES == tuple(p.value for p in v16.Phase)


def test_catalog_sampled_data_default_is_the_energy_register():
    assert defn("meter_values_sampled_data").default == ("Energy.Active.Import.Register",)
    assert defn("meter_values_sampled_data").ocpp201 == "SampledDataCtrlr.TxUpdatedMeasurands"


def test_catalog_transaction_points_are_2_0_1_only_and_what_the_hardware_can_honour():
    start, stop = SETTINGS_BY_NAME["tx_start_point"], SETTINGS_BY_NAME["tx_stop_point"]
    assert (start.ocpp16, start.ocpp201, start.default) == (None, "TxCtrlr.TxStartPoint", ("PowerPathClosed",))
    assert (stop.ocpp16, stop.ocpp201, stop.default) == (None, "TxCtrlr.TxStopPoint", ("Authorized",))
    assert coerce_setting(start, "EVConnected, Authorized") == ("EVConnected", "Authorized")
    assert coerce_setting(stop, "EnergyTransfer") == ("EnergyTransfer",)
    for value in ("ParkingBayOccupancy", "EnergyTransfer", "DataSigned"):
        with pytest.raises(ValueError):
            coerce_setting(start, value)
    master = SETTINGS_BY_NAME["master_pass_group_id"]
    assert (master.ocpp16, master.ocpp201, master.default) == (None, "AuthCtrlr.MasterPassGroupId", "")


def test_catalog_only_secret_is_the_basic_auth_password():
    assert not any(s.secret for s in SETTINGS if s.ocpp16 in CORE_KEYS)
    assert defn("basic_auth_password").ocpp16 == "AuthorizationKey"
    assert [s.name for s in SETTINGS if s.secret] == ["basic_auth_password"]


# ----------------------------------------------------------- coerce / render


@pytest.mark.parametrize("text, expected", [("TRUE", True), ("false", False), (" True ", True), (True, True)])
def test_coerce_bool_accepts_any_case(text, expected):
    definition = defn("local_pre_authorize")
    assert coerce_setting(definition, text) is expected
    assert render_setting(definition, expected) == str(expected).lower()


@pytest.mark.parametrize("value", ["yes", "1", 1, ""])
def test_coerce_bool_rejects_other_values(value):
    with pytest.raises(ValueError, match="expected true or false"):
        coerce_setting(defn("local_pre_authorize"), value)


def test_coerce_int_round_trip_and_bounds():
    definition = defn("light_intensity_percent")
    assert coerce_setting(definition, " 42 ") == 42
    assert render_setting(definition, 42) == "42"
    with pytest.raises(ValueError, match="at most 100"):
        coerce_setting(definition, "101")
    with pytest.raises(ValueError, match="at least 0"):
        coerce_setting(definition, "-1")
    with pytest.raises(ValueError, match="expected an integer"):
        coerce_setting(definition, "4.5")


def test_coerce_int_refuses_more_than_32_bits():
    with pytest.raises(ValueError, match="at most 2147483647"):
        coerce_setting(defn("heartbeat_interval_s"), "2147483648")


def test_coerce_csl_trims_and_round_trips():
    definition = defn("meter_values_aligned_data")
    value = coerce_setting(definition, " Energy.Active.Import.Register , Voltage,SoC ")
    assert value == ("Energy.Active.Import.Register", "Voltage", "SoC")
    assert render_setting(definition, value) == "Energy.Active.Import.Register,Voltage,SoC"
    assert coerce_setting(definition, ["Voltage"]) == ("Voltage",)  # TOML array form


def test_coerce_csl_empty_string_is_the_empty_list():
    definition = defn("stop_txn_sampled_data")
    assert coerce_setting(definition, "") == ()
    assert render_setting(definition, ()) == ""


def test_coerce_csl_rejects_unknown_measurand_with_hint():
    with pytest.raises(ValueError, match=r"unknown item 'Voltag' \(did you mean \"Voltage\"\?\)"):
        coerce_setting(defn("meter_values_aligned_data"), "Energy.Active.Import.Register,Voltag")


def test_coerce_csl_rejects_too_many_items():
    items = ",".join(MEASURANDS[:11])
    with pytest.raises(ValueError, match="at most 10 items, got 11"):
        coerce_setting(defn("meter_values_sampled_data"), items)


@pytest.mark.parametrize("value", ["Voltage,,SoC", "Voltage,", "Voltage,Voltage", 5, [1]])
def test_coerce_csl_rejects_malformed_lists(value):
    with pytest.raises(ValueError):
        coerce_setting(defn("meter_values_sampled_data"), value)


def test_coerce_csl_phase_suffix_only_on_sampled_data():
    assert coerce_setting(defn("meter_values_sampled_data"), "Voltage.L1,Current.Import.L2-N") == (
        "Voltage.L1", "Current.Import.L2-N",
    )
    with pytest.raises(ValueError, match="unknown item 'Voltage.L4'"):
        coerce_setting(defn("meter_values_sampled_data"), "Voltage.L4")
    with pytest.raises(ValueError, match="unknown item 'Voltage.L1'"):
        coerce_setting(defn("meter_values_aligned_data"), "Voltage.L1")


def test_coerce_phase_rotation_items():
    definition = defn("connector_phase_rotation")
    assert coerce_setting(definition, "0.RST, 1.RST,2.RTS") == ("0.RST", "1.RST", "2.RTS")
    assert render_setting(definition, ("0.RST", "1.Unknown")) == "0.RST,1.Unknown"
    for bad in ("RST", "1.ABC", "x.RST", "1.rst"):
        with pytest.raises(ValueError, match="<connectorId>.<rotation>"):
            coerce_setting(definition, bad)


def test_coerce_refuses_read_only_settings():
    with pytest.raises(ValueError, match="read-only"):
        coerce_setting(defn("number_of_connectors"), "3")


# ---------------------------------------------------------------- Settings


def test_settings_defaults_and_initial_values():
    settings = Settings(MemoryStore(), initial={"heartbeat_interval_s": 120, "stop_txn_sampled_data": "Voltage"})
    assert settings["heartbeat_interval_s"] == 120
    assert settings["stop_txn_sampled_data"] == ("Voltage",)
    assert settings["websocket_ping_interval_s"] == 30


def test_settings_refuse_bad_initial_values():
    with pytest.raises(ValueError, match="read-only"):
        Settings(MemoryStore(), initial={"get_configuration_max_keys": 5})
    with pytest.raises(KeyError, match="unknown setting"):
        Settings(MemoryStore(), initial={"no_such_setting": 5})


def test_settings_persisted_values_win_after_reopening(tmp_path):
    path = tmp_path / "data" / "state.sqlite"
    initial = {"heartbeat_interval_s": 120, "meter_values_sampled_data": "Voltage"}
    with StateStore(path) as store:
        settings = Settings(store, initial=initial)
        settings.set("heartbeat_interval_s", "45")
        settings.set("meter_values_sampled_data", "Energy.Active.Import.Register, SoC")
        settings.set("local_pre_authorize", "TRUE")
    with StateStore(path) as store:
        reopened = Settings(store, initial=initial)
        assert store.get("setting:heartbeat_interval_s") == 45
    assert reopened["heartbeat_interval_s"] == 45
    assert reopened["meter_values_sampled_data"] == ("Energy.Active.Import.Register", "SoC")
    assert reopened["local_pre_authorize"] is True
    assert reopened["websocket_ping_interval_s"] == 30


def test_settings_ignore_a_stored_value_that_no_longer_fits(caplog):
    store = MemoryStore({"setting:light_intensity_percent": 500, "setting:number_of_connectors": 4})
    with caplog.at_level(logging.WARNING, logger="agent.runtime.settings"):
        settings = Settings(store)
    assert settings["light_intensity_percent"] == 100
    assert settings["number_of_connectors"] == 1
    assert "ignoring the stored value of setting light_intensity_percent" in caplog.text


def test_settings_set_rejects_without_storing_or_notifying():
    store = MemoryStore()
    settings = Settings(store)
    calls = []
    settings.subscribe(lambda name, value: calls.append(name))
    for name, value in (("heartbeat_interval_s", "0"), ("meter_values_sampled_data", "Nope"),
                        ("number_of_connectors", "2")):
        with pytest.raises(ValueError):
            settings.set(name, value)
    assert store == {} and calls == []
    assert settings["heartbeat_interval_s"] == 300


def test_settings_listeners_called_with_coerced_value():
    settings = Settings(MemoryStore())
    calls = []
    settings.subscribe(lambda name, value: calls.append((name, value)))
    assert settings.set("stop_txn_aligned_data", "Voltage, SoC") == ("Voltage", "SoC")
    settings.set("local_authorize_offline", "false")
    assert calls == [("stop_txn_aligned_data", ("Voltage", "SoC")), ("local_authorize_offline", False)]


def test_settings_failing_listener_does_not_stop_the_others(caplog):
    settings = Settings(MemoryStore())
    calls = []

    def broken(name, value):
        raise RuntimeError("boom")

    settings.subscribe(broken)
    settings.subscribe(lambda name, value: calls.append(value))
    with caplog.at_level(logging.ERROR, logger="agent.runtime.settings"):
        assert settings.set("blink_repeat", "2") == 2
    assert calls == [2] and settings["blink_repeat"] == 2
    assert "listener for setting blink_repeat failed" in caplog.text


def test_settings_computed_values_come_from_the_station():
    connectors = [2]
    settings = Settings(MemoryStore(), computed={
        "number_of_connectors": lambda: connectors[0],
        "supported_feature_profiles": lambda: ["Core", "RemoteTrigger"],
    })
    assert settings["number_of_connectors"] == 2
    connectors[0] = 3
    assert settings["number_of_connectors"] == 3
    assert settings["supported_feature_profiles"] == ("Core", "RemoteTrigger")


def test_settings_computed_falls_back_to_default_and_only_for_read_only():
    assert Settings(MemoryStore())["supported_feature_profiles"] == ("Core",)
    with pytest.raises(ValueError, match="writable"):
        Settings(MemoryStore(), computed={"heartbeat_interval_s": lambda: 5})
    with pytest.raises(KeyError):
        Settings(MemoryStore(), computed={"no_such_setting": lambda: 5})


def test_settings_custom_catalog():
    catalog = (SettingDef("x_s", int, 1, "X", minimum=0), SettingDef("names", CSL, (), "Names", max_items=2))
    settings = Settings(MemoryStore(), catalog=catalog)
    assert settings.catalog == catalog
    assert settings.set("names", "a,b") == ("a", "b")
    with pytest.raises(KeyError):
        settings["heartbeat_interval_s"]


def test_settings_secret_value_is_not_logged(caplog):
    catalog = (SettingDef("authorization_key", str, "", "AuthorizationKey", secret=True),)
    settings = Settings(MemoryStore(), catalog=catalog)
    with caplog.at_level(logging.INFO, logger="agent.runtime.settings"):
        settings.set("authorization_key", "s3cr3t")
    assert settings["authorization_key"] == "s3cr3t"
    assert "s3cr3t" not in caplog.text and "(secret)" in caplog.text
