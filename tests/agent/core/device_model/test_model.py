"""Tests of agent.core.device_model: the OCPP 2.0.1 device model over the one settings store."""

import ast
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import ocpp
import pytest
from ocpp.charge_point import snake_to_camel_case
from ocpp.v201 import enums as v201

import agent.core.device_model as device_model_package
from agent.core.management.configuration import ChangeResult, ConfigurationService
from agent.core.device_model import (
    DataType,
    DeviceModel,
    GetVariableStatus,
    Mutability,
    ReportBase,
    SetVariableStatus,
    chunk,
    max_power_W,
    station_suppliers,
    variable_key,
)
from agent.core.device_model.catalog import MEASURANDS_201
from agent.core.charging.model import ConnectorStatus
from agent.runtime.settings import SETTINGS, SettingDef, Settings
from agent.runtime.store import StateStore

G = GetVariableStatus
S = SetVariableStatus
PASSWORD = SettingDef("basic_auth_password", str, "", None, "SecurityCtrlr.BasicAuthPassword", secret=True,
                      minimum=16, maximum=40)
MODEM = SettingDef("modem_apn", str, "", None, "ModemCtrlr.Apn", reboot_required=True)
SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"


@pytest.fixture
def settings(store):
    return Settings(store, catalog=(*SETTINGS, PASSWORD, MODEM))


def fake_station():
    """The parts of a ChargingStation station_suppliers reads."""
    machines = {
        1: SimpleNamespace(status=ConnectorStatus.CHARGING, faults=set()),
        2: SimpleNamespace(status=ConnectorStatus.FAULTED, faults={"rcd-trip"}),
    }
    return SimpleNamespace(evses=machines, statuses={0: (ConnectorStatus.AVAILABLE, None)}, station_faults=set())


def computed(station):
    return {
        **station_suppliers(station),
        "ClockCtrlr.DateTime": lambda: datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone.utc),
        "SecurityCtrlr.Identity": lambda: "CP-001",
        "OCPPCommCtrlr.MessageTimeout[Default]": lambda: 30.0,
        "AuthCtrlr.Enabled": lambda: True,
        "ChargingStation.SupplyPhases": lambda: 3,
        "EVSE[1].Power": lambda: 7360.5,
        "EVSE[2].Power": lambda: None,  # meter failing
        "EVSE[1].SupplyPhases": lambda: 3,
        "Connector[1,1].ConnectorType": lambda: "cType2",
    }


@pytest.fixture
def station():
    return fake_station()


@pytest.fixture
def model(settings, station):
    return DeviceModel(settings, evse_ids=[1, 2], computed=computed(station),
                       evse_max_power_W={1: max_power_W(32, 3), 2: max_power_W(16, 1)})


def by_key(items):
    return {variable_key(i.component["name"], i.variable["name"], evse_id=i.component.get("evse", {}).get("id"),
                         connector_id=i.component.get("evse", {}).get("connector_id"),
                         variable_instance=i.variable.get("instance")): i for i in items}


# ------------------------------------------------------------------ basics


def test_device_model_imports_no_ocpp():
    for path in Path(device_model_package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(n == "ocpp" or n.startswith("ocpp.") for n in names), path


def test_device_model_enumerations_are_spelled_as_ocpp_201():
    assert [s.value for s in G] == [e.value for e in v201.GetVariableStatusEnumType]
    assert [s.value for s in S] == [e.value for e in v201.SetVariableStatusEnumType]
    assert {m.value for m in Mutability} == {e.value for e in v201.MutabilityEnumType}
    assert {d.value for d in DataType} <= {e.value for e in v201.DataEnumType}
    assert {r.value for r in ReportBase} == {e.value for e in v201.ReportBaseEnumType}


def test_device_model_measurand_values_are_201_measurands():
    assert set(MEASURANDS_201) <= {e.value for e in v201.MeasurandEnumType}


def test_device_model_variable_key_format():
    assert variable_key("ClockCtrlr", "DateTime") == "ClockCtrlr.DateTime"
    assert variable_key("EVSE", "Power", evse_id=2) == "EVSE[2].Power"
    assert variable_key("Connector", "ConnectorType", evse_id=1, connector_id=1) == "Connector[1,1].ConnectorType"
    assert variable_key("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="GetReport") == \
        "DeviceDataCtrlr.ItemsPerMessage[GetReport]"


def test_device_model_rejects_unknown_computed_key_with_hint(settings):
    with pytest.raises(ValueError, match='did you mean "ClockCtrlr.DateTime"'):
        DeviceModel(settings, evse_ids=[1], computed={"ClockCtrlr.Datetime": lambda: 0})
    with pytest.raises(ValueError, match="no station variable EVSE\\[3\\].Power"):
        DeviceModel(settings, evse_ids=[1], computed={"EVSE[3].Power": lambda: 0})


def test_device_model_refuses_a_supplier_for_a_setting(settings):
    with pytest.raises(ValueError, match="is a setting"):
        DeviceModel(settings, evse_ids=[1], computed={"OCPPCommCtrlr.HeartbeatInterval": lambda: 5})


def test_device_model_caller_may_replace_a_constant(settings):
    model = DeviceModel(settings, evse_ids=[1], computed={
        "DeviceDataCtrlr.ItemsPerMessage[GetVariables]": lambda: 25, "SmartChargingCtrlr.Available": lambda: True})
    assert model.get("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="GetVariables").value == "25"
    assert model.get("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="SetVariables").value == "100"
    assert model.get("SmartChargingCtrlr", "Available").value == "true"


def test_device_model_leaves_out_what_the_caller_cannot_answer(settings):
    bare = DeviceModel(settings, evse_ids=[1])
    assert bare.get("ClockCtrlr", "DateTime").status is G.UNKNOWN_VARIABLE
    assert bare.get("EVSE", "Power", evse_id=1).status is G.UNKNOWN_VARIABLE
    assert bare.get("EVSE", "Available", evse_id=1).value == "true"


# ------------------------------------------------------------------ get


def test_get_setting_value(model):
    result = model.get("OCPPCommCtrlr", "HeartbeatInterval")
    assert (result.status, result.value) == (G.ACCEPTED, "300")
    result = model.get("SampledDataCtrlr", "TxUpdatedMeasurands")
    assert (result.status, result.value) == (G.ACCEPTED, "Energy.Active.Import.Register")
    assert model.get("TxCtrlr", "StopTxOnEVSideDisconnect").value == "true"


def test_get_names_are_case_insensitive(model):
    assert model.get("ocppcommctrlr", "heartbeatinterval").value == "300"
    assert model.get("devicedatactrlr", "itemspermessage", variable_instance="getreport").value == "100"


def test_get_station_values_rendered_as_ocpp_strings(model):
    assert model.get("ClockCtrlr", "DateTime").value == "2024-05-01T12:00:00.250Z"
    assert model.get("EVSE", "Power", evse_id=1).value == "7360.5"
    assert model.get("OCPPCommCtrlr", "MessageTimeout", variable_instance="Default").value == "30"
    assert model.get("Connector", "ConnectorType", evse_id=1, connector_id=1).value == "cType2"
    assert model.get("TxCtrlr", "TxStartPoint").value == "PowerPathClosed"
    assert model.get("TxCtrlr", "TxStopPoint").value == "Authorized"
    assert model.get("ClockCtrlr", "TimeSource").value == "Heartbeat"


def test_get_availability_from_the_station(model, station):
    assert model.get("ChargingStation", "AvailabilityState").value == "Available"
    assert model.get("EVSE", "AvailabilityState", evse_id=1).value == "Occupied"
    assert model.get("Connector", "AvailabilityState", evse_id=2, connector_id=1).value == "Faulted"
    assert model.get("EVSE", "Problem", evse_id=2).value == "true"
    station.statuses[0] = (ConnectorStatus.UNAVAILABLE, None)
    station.evses[1].status = ConnectorStatus.AVAILABLE
    assert model.get("ChargingStation", "AvailabilityState").value == "Unavailable"
    assert model.get("EVSE", "AvailabilityState", evse_id=1).value == "Available"
    station.station_faults.add("rcd-trip")
    assert model.get("ChargingStation", "AvailabilityState").value == "Faulted"
    assert model.get("ChargingStation", "Problem").value == "true"


def test_get_mirrored_interval_follows_the_setting(model, settings):
    settings.set("meter_value_sample_interval_s", 15)
    assert model.get("SampledDataCtrlr", "TxEndedInterval").value == "15"


def test_get_unknown_component(model):
    assert model.get("FooCtrlr", "Enabled").status is G.UNKNOWN_COMPONENT
    assert model.get("EVSE", "Power", evse_id=3).status is G.UNKNOWN_COMPONENT
    assert model.get("EVSE", "Power").status is G.UNKNOWN_COMPONENT
    assert model.get("Connector", "Available", evse_id=1).status is G.UNKNOWN_COMPONENT
    assert model.get("OCPPCommCtrlr", "HeartbeatInterval", evse_id=1).status is G.UNKNOWN_COMPONENT
    assert model.get("OCPPCommCtrlr", "HeartbeatInterval", component_instance="x").status is G.UNKNOWN_COMPONENT


def test_get_unknown_variable(model):
    assert model.get("OCPPCommCtrlr", "NoSuchThing").status is G.UNKNOWN_VARIABLE
    assert model.get("DeviceDataCtrlr", "ItemsPerMessage").status is G.UNKNOWN_VARIABLE  # instance required
    assert model.get("OCPPCommCtrlr", "HeartbeatInterval", variable_instance="x").status is G.UNKNOWN_VARIABLE


def test_get_other_attribute_types_are_not_supported(model):
    for attribute in ("Target", "MinSet", "MaxSet", "Bogus"):
        assert model.get("OCPPCommCtrlr", "HeartbeatInterval", attribute_type=attribute).status is \
            G.NOT_SUPPORTED_ATTRIBUTE_TYPE
    assert model.get("OCPPCommCtrlr", "HeartbeatInterval", attribute_type=None).status is G.ACCEPTED


def test_get_write_only_is_rejected_without_value(model):
    assert model.set("SecurityCtrlr", "BasicAuthPassword", "0123456789abcdef").status is S.ACCEPTED
    result = model.get("SecurityCtrlr", "BasicAuthPassword")
    assert (result.status, result.value) == (G.REJECTED, None)


def test_get_unavailable_or_failing_value_is_rejected(model, settings, caplog):
    assert model.get("EVSE", "Power", evse_id=2).status is G.REJECTED

    def broken():
        raise OSError("meter gone")

    failing = DeviceModel(settings, evse_ids=[1], computed={"EVSE[1].Power": broken})
    with caplog.at_level(logging.ERROR):
        assert failing.get("EVSE", "Power", evse_id=1).status is G.REJECTED
    assert "EVSE[1].Power" in caplog.text


# ------------------------------------------------------------------ set


def test_set_accepted_is_persisted_and_seen_by_ocpp16(model, store, settings):
    assert model.set("OCPPCommCtrlr", "HeartbeatInterval", "120").status is S.ACCEPTED
    assert store.get("setting:heartbeat_interval_s") == 120
    known, _ = ConfigurationService(settings).get_ocpp16(["HeartbeatInterval"])
    assert known[0].value == "120"


def test_set_by_ocpp16_is_seen_by_the_device_model(model, settings):
    service = ConfigurationService(settings)
    assert service.change_ocpp16("MeterValuesSampledData", "SoC,Voltage") is ChangeResult.ACCEPTED
    assert service.change_ocpp16("StopTransactionOnInvalidId", "false") is ChangeResult.ACCEPTED
    assert model.get("SampledDataCtrlr", "TxUpdatedMeasurands").value == "SoC,Voltage"
    assert model.get("TxCtrlr", "StopTxOnInvalidId").value == "false"


def test_set_survives_a_restart(tmp_path):
    path = tmp_path / "state.sqlite"
    with StateStore(path) as store:
        assert DeviceModel(Settings(store), evse_ids=[1]).set("AuthCtrlr", "LocalPreAuthorize", "true").status \
            is S.ACCEPTED
    with StateStore(path) as store:
        assert DeviceModel(Settings(store), evse_ids=[1]).get("AuthCtrlr", "LocalPreAuthorize").value == "true"


def test_set_list_and_string_values(model, settings):
    assert model.set("AlignedDataCtrlr", "Measurands", "Energy.Active.Import.Register, Power.Active.Import") \
        .status is S.ACCEPTED
    assert settings["meter_values_aligned_data"] == ("Energy.Active.Import.Register", "Power.Active.Import")
    assert model.set("SecurityCtrlr", "OrganizationName", "Example CPO B.V.").status is S.ACCEPTED
    assert model.get("SecurityCtrlr", "OrganizationName").value == "Example CPO B.V."


@pytest.mark.parametrize("component, variable, value", [
    ("OCPPCommCtrlr", "HeartbeatInterval", "often"),
    ("OCPPCommCtrlr", "HeartbeatInterval", "0"),  # below minLimit 1
    ("AlignedDataCtrlr", "Interval", "86401"),  # above maxLimit
    ("TxCtrlr", "StopTxOnInvalidId", "yes"),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", "Voltage.L1"),  # not in valuesList for 2.0.1
    ("SampledDataCtrlr", "TxUpdatedMeasurands", "RPM"),  # a 1.6-only measurand
    ("SampledDataCtrlr", "TxUpdatedMeasurands", "SoC,SoC"),
    ("SecurityCtrlr", "OrganizationName", "x" * 65),
    ("SecurityCtrlr", "BasicAuthPassword", "too-short"),
    ("TxCtrlr", "TxStartPoint", "ParkingBayOccupancy"),  # no sensor for it
    ("TxCtrlr", "TxStartPoint", "EnergyTransfer"),  # energy would have to flow before the transaction
    ("TxCtrlr", "TxStopPoint", "DataSigned"),
    ("AuthCtrlr", "MasterPassGroupId", "x" * 37),
])
def test_set_bad_value_is_rejected_and_not_persisted(model, store, settings, component, variable, value):
    before = {d.name: settings[d.name] for d in settings.catalog}
    stored = dict(store.connection.execute("SELECT key, value FROM kv").fetchall())
    result = model.set(component, variable, value)
    assert result.status is S.REJECTED
    assert {d.name: settings[d.name] for d in settings.catalog} == before
    assert dict(store.connection.execute("SELECT key, value FROM kv").fetchall()) == stored


def test_set_transaction_points_and_master_pass(model, settings):
    assert model.get("TxCtrlr", "TxStartPoint").value == "PowerPathClosed"
    assert model.set("TxCtrlr", "TxStartPoint", "EVConnected,Authorized").status is S.ACCEPTED
    assert settings["tx_start_point"] == ("EVConnected", "Authorized")
    assert model.set("TxCtrlr", "TxStopPoint", "EVConnected,EnergyTransfer").status is S.ACCEPTED
    assert settings["tx_stop_point"] == ("EVConnected", "EnergyTransfer")
    assert model.set("AuthCtrlr", "MasterPassGroupId", "MASTER").status is S.ACCEPTED
    assert settings["master_pass_group_id"] == "MASTER"
    item = next(i for i in model.report("FullInventory")
                if (i.component["name"], i.variable["name"]) == ("TxCtrlr", "TxStartPoint"))
    assert item.characteristics["values_list"] == "EVConnected,Authorized,PowerPathClosed"
    assert item.attributes[0]["mutability"] == "ReadWrite"


def test_set_read_only_is_rejected(model, settings):
    for component, variable in (("ClockCtrlr", "TimeSource"), ("AuthCacheCtrlr", "Available"),
                                ("ClockCtrlr", "DateTime"), ("AlignedDataCtrlr", "TxEndedInterval")):
        result = model.set(component, variable, "PowerPathClosed")
        assert (result.status, result.reason) == (S.REJECTED, "read-only")
    assert model.set("EVSE", "AvailabilityState", "Unavailable", evse_id=1).status is S.REJECTED


def test_set_unknown_component_variable_and_attribute(model):
    assert model.set("FooCtrlr", "Enabled", "true").status is S.UNKNOWN_COMPONENT
    assert model.set("EVSE", "Available", "true", evse_id=9).status is S.UNKNOWN_COMPONENT
    assert model.set("OCPPCommCtrlr", "Bogus", "1").status is S.UNKNOWN_VARIABLE
    assert model.set("OCPPCommCtrlr", "HeartbeatInterval", "60", attribute_type="Target").status is \
        S.NOT_SUPPORTED_ATTRIBUTE_TYPE


def test_set_reboot_required(model, settings):
    assert model.set("ModemCtrlr", "Apn", "internet").status is S.REBOOT_REQUIRED
    assert settings["modem_apn"] == "internet"


def test_set_secret_value_is_never_logged_or_returned(model, caplog):
    with caplog.at_level(logging.DEBUG):
        assert model.set("SecurityCtrlr", "BasicAuthPassword", "s3cr3t-but-short").status is S.ACCEPTED
        rejected = model.set("SecurityCtrlr", "BasicAuthPassword", "s3cr3t")
    assert rejected.status is S.REJECTED and rejected.reason is None
    assert "s3cr3t" not in caplog.text
    for base in ReportBase:
        for item in model.report(base.value):
            assert "s3cr3t" not in json.dumps(item.as_report_data())


# ------------------------------------------------------------------ reports


def test_report_full_inventory_has_every_variable(model):
    items = model.report("FullInventory")
    assert len(items) == len(model.entries) - 1  # EVSE[2].Power is unknown right now: left out
    assert all(item.characteristics is not None for item in items)
    keys = by_key(items)
    assert keys["EVSE[1].Power"].characteristics == {"data_type": "decimal", "unit": "W", "min_limit": 0,
                                                     "max_limit": 22080.0, "supports_monitoring": True}
    assert keys["OCPPCommCtrlr.HeartbeatInterval"].attributes == [
        {"type": "Actual", "value": "300", "mutability": "ReadWrite", "persistent": True, "constant": False}]
    assert keys["SecurityCtrlr.BasicAuthPassword"].attributes == [
        {"type": "Actual", "mutability": "WriteOnly", "persistent": True, "constant": False}]
    assert keys["Connector[1,1].ConnectorType"].component == {"name": "Connector", "evse": {"id": 1, "connector_id": 1}}
    assert keys["DeviceDataCtrlr.BytesPerMessage[SetVariables]"].variable == {"name": "BytesPerMessage",
                                                                              "instance": "SetVariables"}


def test_report_is_in_component_order(model):
    names = [(i.component["name"], i.component.get("evse", {}).get("id")) for i in model.report("FullInventory")]
    order = list(dict.fromkeys(names))
    assert order[0] == ("OCPPCommCtrlr", None)
    assert order[-4:] == [("EVSE", 1), ("Connector", 1), ("EVSE", 2), ("Connector", 2)]


def test_report_configuration_inventory_has_the_writable_variables(model):
    items = model.report("ConfigurationInventory")
    mutabilities = {i.attributes[0]["mutability"] for i in items}
    assert mutabilities == {"ReadWrite", "WriteOnly"}
    assert len(items) == len([d for d in model._settings.catalog if d.ocpp201 and not d.readonly])
    assert "TxCtrlr.TxStartPoint" in by_key(items) and "ClockCtrlr.TimeSource" not in by_key(items)


def test_report_summary_inventory_has_availability_and_problems(model):
    keys = by_key(model.report("SummaryInventory"))
    assert set(keys) == {"ChargingStation.AvailabilityState", "EVSE[1].AvailabilityState",
                         "Connector[1,1].AvailabilityState", "EVSE[2].AvailabilityState",
                         "Connector[2,1].AvailabilityState", "EVSE[2].Problem"}
    assert keys["EVSE[2].AvailabilityState"].attributes[0]["value"] == "Faulted"
    assert all(item.characteristics is None for item in keys.values())


def test_report_rejects_bad_arguments(model):
    with pytest.raises(ValueError):
        model.report("Everything")
    with pytest.raises(ValueError):
        model.report("FullInventory", component_criteria=["Active"])
    with pytest.raises(ValueError):
        model.report(component_criteria=["Broken"])


def test_report_criteria_available_and_enabled(model, settings):
    available = {i.component["name"] for i in model.report(component_criteria=["Available"])}
    assert "AuthCacheCtrlr" in available and "OCPPCommCtrlr" in available  # no Available variable: available
    assert {"LocalAuthListCtrlr", "ReservationCtrlr", "SmartChargingCtrlr"} <= available
    settings.set("local_auth_list_enabled", False)  # the list is there, but switched off
    enabled = {i.component["name"] for i in model.report(component_criteria=["Enabled"])}
    assert {"SampledDataCtrlr", "AuthCacheCtrlr", "AuthCtrlr", "EVSE", "ReservationCtrlr"} <= enabled
    assert "LocalAuthListCtrlr" not in enabled


def test_report_criteria_problem_and_any_of_several(model):
    problem = {(i.component["name"], i.component.get("evse", {}).get("id"))
               for i in model.report(component_criteria=["Problem"])}
    assert problem == {("EVSE", 2)}
    both = {i.component["name"] for i in model.report(component_criteria=["Problem", "Enabled"])}
    assert "EVSE" in both and "OCPPCommCtrlr" in both


def test_report_component_variables(model):
    whole = model.report(component_variables=[{"component": {"name": "TxCtrlr"}}])
    assert {i.component["name"] for i in whole} == {"TxCtrlr"} and len(whole) == 6
    one = model.report(component_variables=[{"component": {"name": "ocppcommctrlr"},
                                             "variable": {"name": "HeartbeatInterval"}}])
    assert [i.attributes[0]["value"] for i in one] == ["300"]
    every_evse = by_key(model.report(component_variables=[{"component": {"name": "EVSE"},
                                                           "variable": {"name": "AvailabilityState"}}]))
    assert set(every_evse) == {"EVSE[1].AvailabilityState", "EVSE[2].AvailabilityState"}
    connector = by_key(model.report(component_variables=[{"component": {"name": "Connector", "evse": {"id": 2}}}]))
    assert set(connector) == {"Connector[2,1].AvailabilityState", "Connector[2,1].Available"}
    instances = model.report(component_variables=[{"component": {"name": "DeviceDataCtrlr"},
                                                   "variable": {"name": "ItemsPerMessage"}}])
    assert {i.variable["instance"] for i in instances} == {"GetReport", "GetVariables", "SetVariables"}
    assert model.report(component_variables=[{"component": {"name": "Nothing"}}]) == []


def test_report_criteria_and_component_variables_intersect(model, settings):
    settings.set("local_auth_list_enabled", False)
    items = model.report(component_criteria=["Enabled"],
                         component_variables=[{"component": {"name": "LocalAuthListCtrlr"}},
                                              {"component": {"name": "AuthCacheCtrlr"}}])
    assert {i.component["name"] for i in items} == {"AuthCacheCtrlr"}


def test_report_items_are_valid_notify_report_payloads(model):
    schema = json.loads((SCHEMAS / "NotifyReportRequest.json").read_text())
    for base in ReportBase:
        data = [item.as_report_data() for item in model.report(base.value)]
        payload = {"requestId": 1, "generatedAt": "2024-05-01T12:00:00Z", "seqNo": 0,
                   "reportData": snake_to_camel_case(data)}
        jsonschema.validate(payload, schema)


def test_report_full_inventory_is_fast(model):
    model.report("FullInventory")  # warm-up
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        items = model.report("FullInventory")
        chunk(items, items_per_message=20, bytes_per_message=16000, size_of=_json_size)
    per_report = (time.perf_counter() - start) / runs
    assert per_report < 0.050, f"{per_report * 1000:.1f} ms per FullInventory"


# ------------------------------------------------------------------ chunk


def _json_size(items):
    return len(json.dumps({"requestId": 1, "seqNo": 0, "reportData": [i.as_report_data() for i in items]}))


def test_chunk_by_item_count(model):
    items = model.report("FullInventory")
    chunks = chunk(items, items_per_message=7, bytes_per_message=10**6, size_of=_json_size)
    assert [len(c) for c in chunks[:-1]] == [7] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= 7
    assert [i for c in chunks for i in c] == items


def test_chunk_by_bytes(model):
    items = model.report("FullInventory")
    limit = 2000
    chunks = chunk(items, items_per_message=1000, bytes_per_message=limit, size_of=_json_size)
    assert [i for c in chunks for i in c] == items
    assert all(_json_size(c) <= limit for c in chunks)
    # Full: the next item would not have fitted.
    assert all(_json_size(c + [n[0]]) > limit for c, n in zip(chunks, chunks[1:]))


def test_chunk_respects_a_size_that_is_not_additive():
    def size_of(items):  # each extra item costs more than the one before
        return 10 + sum(range(len(items) + 1)) * 3

    chunks = chunk(list(range(20)), items_per_message=100, bytes_per_message=100, size_of=size_of)
    assert [i for c in chunks for i in c] == list(range(20))
    assert all(size_of(c) <= 100 for c in chunks)


def test_chunk_refuses_an_item_too_big_alone(model):
    items = model.report("FullInventory")
    with pytest.raises(ValueError, match="one report item alone"):
        chunk(items, items_per_message=10, bytes_per_message=50, size_of=_json_size)


def test_chunk_of_nothing_is_no_message():
    assert chunk([], items_per_message=5, bytes_per_message=100, size_of=lambda items: 10 * len(items)) == []
