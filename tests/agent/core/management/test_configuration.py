"""Tests of agent.core.management.configuration: GetConfiguration / ChangeConfiguration semantics of OCPP 1.6."""

import ast
import logging
from pathlib import Path

import pytest

import agent.core.management.configuration as configuration_module
from agent.core.management.configuration import ChangeResult, ConfigurationService, KeyValue, TooManyKeysError
from agent.runtime.settings import SETTINGS, CSL, SettingDef, Settings
from agent.runtime.store import StateStore
from tests.harness.fakes import MemoryStore


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def service(store):
    settings = Settings(store, computed={
        "number_of_connectors": lambda: 2,
        "supported_feature_profiles": lambda: ("Core", "RemoteTrigger"),
    })
    return ConfigurationService(settings)


def test_configuration_module_imports_no_ocpp():
    tree = ast.parse(Path(configuration_module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(name == "ocpp" or name.startswith("ocpp.") for name in imported)


def test_change_result_values_are_ocpp_16_statuses():
    assert [r.value for r in ChangeResult] == ["Accepted", "Rejected", "RebootRequired", "NotSupported"]


# ----------------------------------------------------------------- get


def test_get_all_keys_in_catalog_order(service):
    known, unknown = service.get_ocpp16(None)
    assert unknown == []
    assert [kv.key for kv in known] == [s.ocpp16 for s in SETTINGS if s.ocpp16]
    by_key = {kv.key: kv for kv in known}
    assert by_key["HeartbeatInterval"] == KeyValue("HeartbeatInterval", "300", False)
    assert by_key["MeterValuesSampledData"].value == "Energy.Active.Import.Register"
    assert by_key["AuthorizationCacheEnabled"].value == "true"
    assert by_key["StopTxnSampledData"].value == ""
    assert by_key["NumberOfConnectors"] == KeyValue("NumberOfConnectors", "2", True)
    assert by_key["SupportedFeatureProfiles"] == KeyValue("SupportedFeatureProfiles", "Core,RemoteTrigger", True)
    assert service.get_ocpp16([]) == (known, [])


def test_get_subset_with_unknown_keys_in_request_order(service):
    known, unknown = service.get_ocpp16(
        ["WebSocketPingInterval", "Foo", "HeartbeatInterval", "Bar", "Foo", "RetryBackOffRepeatTimes"]
    )
    assert known == [KeyValue("WebSocketPingInterval", "30", False), KeyValue("HeartbeatInterval", "300", False)]
    assert unknown == ["Foo", "Bar", "RetryBackOffRepeatTimes"]  # 2.0.1-only settings have no 1.6 key


def test_get_is_case_insensitive_and_answers_in_canonical_spelling(service):
    known, unknown = service.get_ocpp16(["heartbeatinterval", "HEARTBEATINTERVAL", "foo", "FOO"])
    assert known == [KeyValue("HeartbeatInterval", "300", False)]
    assert unknown == ["foo"]


def test_get_limits_named_keys_to_get_configuration_max_keys(service):
    limit = service.get_ocpp16(["GetConfigurationMaxKeys"])[0][0].value
    assert service.get_ocpp16(["HeartbeatInterval"] * int(limit))[0]
    with pytest.raises(TooManyKeysError) as caught:
        service.get_ocpp16(["HeartbeatInterval"] * (int(limit) + 1))
    assert (caught.value.requested, caught.value.limit) == (int(limit) + 1, int(limit))
    assert isinstance(caught.value, ValueError)


def test_get_reports_secret_without_its_value():
    catalog = (*SETTINGS, SettingDef("authorization_key", str, "", "AuthorizationKey", secret=True))
    settings = Settings(MemoryStore(), catalog=catalog)
    settings.set("authorization_key", "0123456789abcdef")
    service = ConfigurationService(settings)
    assert service.get_ocpp16(["AuthorizationKey"]) == ([KeyValue("AuthorizationKey", None, False)], [])
    assert KeyValue("AuthorizationKey", None, False) in service.get_ocpp16(None)[0]


# --------------------------------------------------------------- change


def test_change_accepted_is_persisted_and_applied(tmp_path):
    path = tmp_path / "state.sqlite"
    with StateStore(path) as store:
        settings = Settings(store)
        calls = []
        settings.subscribe(lambda name, value: calls.append((name, value)))
        service = ConfigurationService(settings)
        assert service.change_ocpp16("HeartbeatInterval", "60") is ChangeResult.ACCEPTED
        assert service.change_ocpp16("meterValuesSampledData", "Voltage.L1, SoC") is ChangeResult.ACCEPTED
        assert calls == [("heartbeat_interval_s", 60), ("meter_values_sampled_data", ("Voltage.L1", "SoC"))]
    with StateStore(path) as store:
        service = ConfigurationService(Settings(store))
        known, _ = service.get_ocpp16(["HeartbeatInterval", "MeterValuesSampledData"])
    assert [kv.value for kv in known] == ["60", "Voltage.L1,SoC"]


def test_change_unknown_key_is_not_supported(service, store):
    assert service.change_ocpp16("NoSuchKey", "1") is ChangeResult.NOT_SUPPORTED
    assert service.change_ocpp16("RetryBackOffRepeatTimes", "1") is ChangeResult.NOT_SUPPORTED
    assert store == {}


@pytest.mark.parametrize("key, value", [
    ("NumberOfConnectors", "3"),
    ("GetConfigurationMaxKeys", "10"),
    ("supportedfeatureprofiles", "Core"),
])
def test_change_read_only_key_is_rejected(service, store, key, value):
    assert service.change_ocpp16(key, value) is ChangeResult.REJECTED
    assert store == {}


@pytest.mark.parametrize("key, value", [
    ("HeartbeatInterval", "soon"),
    ("HeartbeatInterval", "0"),
    ("LightIntensity", "101"),
    ("LocalPreAuthorize", "yes"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,Bogus"),
    ("MeterValuesAlignedData", ",".join(["Voltage"] + [f"Current.Import.L{i}" for i in (1, 2, 3)])),
    ("StopTxnSampledData", "Current.Import,Current.Export,Current.Offered,Energy.Active.Export.Register,"
     "Energy.Active.Import.Register,Energy.Reactive.Export.Register,Energy.Reactive.Import.Register,"
     "Frequency,Power.Factor,SoC,Voltage"),
    ("ConnectorPhaseRotation", "1.XYZ"),
])
def test_change_bad_value_is_rejected_and_nothing_persisted(service, store, key, value):
    calls = []
    service._settings.subscribe(lambda name, new: calls.append(name))
    before = service.get_ocpp16([key])
    assert service.change_ocpp16(key, value) is ChangeResult.REJECTED
    assert store == {} and calls == []
    assert service.get_ocpp16([key]) == before


def test_change_reboot_required_setting():
    catalog = (*SETTINGS, SettingDef("modem_apn", str, "", "ModemApn", reboot_required=True))
    store = MemoryStore()
    service = ConfigurationService(Settings(store, catalog=catalog))
    assert service.change_ocpp16("modemapn", "internet") is ChangeResult.REBOOT_REQUIRED
    assert store == {"setting:modem_apn": "internet"}


def test_change_secret_rejection_does_not_log_the_value(caplog):
    catalog = (*SETTINGS, SettingDef("pin_code", int, 0, "PinCode", secret=True, maximum=9999))
    service = ConfigurationService(Settings(MemoryStore(), catalog=catalog))
    with caplog.at_level(logging.INFO):
        assert service.change_ocpp16("PinCode", "987654") is ChangeResult.REJECTED
    assert "987654" not in caplog.text


def test_change_list_setting_with_custom_catalog_limits():
    catalog = (SettingDef("names", CSL, (), "Names", max_items=2),)
    service = ConfigurationService(Settings(MemoryStore(), catalog=catalog))
    assert service.change_ocpp16("Names", "a,b") is ChangeResult.ACCEPTED
    assert service.change_ocpp16("Names", "a,b,c") is ChangeResult.REJECTED
    assert service.get_ocpp16(None) == ([KeyValue("Names", "a,b", False)], [])
