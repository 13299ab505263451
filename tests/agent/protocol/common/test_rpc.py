"""The adapter base's OCPP-J RPC layer, over an in-memory connection pair.

Each test plays the CSMS by hand: it writes raw frames into the station's inbox
and reads what the station answers, so every byte on the wire is asserted.
"""

import asyncio
import itertools
import json

import pytest
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16

from agent.runtime.clock import Clock
from agent.errors import CallAborted, CallTimeout
from agent.errors import CallErrorReceived, InvalidResponse
from agent.protocol.common.adapter import StationInfo
from agent.protocol.v16.adapter import Ocpp16Adapter
from agent.protocol.v201.adapter import Ocpp201Adapter
from agent.runtime.settings import Settings
from tests.harness.fakes import DictStore, MemoryConnection


class Station16(Ocpp16Adapter):
    """A 1.6 adapter with one handler, to exercise dispatch."""

    @on("ClearCache")
    def on_clear_cache(self):
        return result16.ClearCache(status="Accepted")

    @on("ChangeAvailability")
    def on_change_availability(self, connector_id, type):
        return result16.ChangeAvailability(status="Accepted")

    @on("ReserveNow")
    def on_reserve_now(self, **_):
        return result16.ReserveNow(status="Rejected")

    @on("GetConfiguration")
    def on_get_configuration(self, key=None):
        raise RuntimeError("boom")


class Station201(Ocpp201Adapter):
    """A 2.0.1 adapter with no handlers at all."""


def make(adapter_cls, *, response_timeout_s=1.0):
    connection = MemoryConnection()
    adapter = adapter_cls(
        "CP1", connection, station=StationInfo("Acme", "W1"), settings=Settings(DictStore()),
        clock=Clock(), response_timeout_s=response_timeout_s,
    )
    counter = itertools.count(1)
    adapter._unique_id_generator = lambda: f"id-{next(counter)}"
    return adapter, connection


@pytest.fixture
async def station16():
    adapter, connection = make(Station16)
    reader = asyncio.create_task(adapter.start())
    yield adapter, connection
    reader.cancel()


@pytest.fixture
async def station201():
    adapter, connection = make(Station201)
    reader = asyncio.create_task(adapter.start())
    yield adapter, connection
    reader.cancel()


async def test_rpc_handler_answers_callresult(station16):
    _, conn = station16
    await conn.inbox.put('[2,"m1","ClearCache",{}]')
    assert await conn.next_out() == [3, "m1", {"status": "Accepted"}]


async def test_rpc_unknown_action_is_not_implemented(station16):
    _, conn = station16
    await conn.inbox.put('[2,"m1","MakeCoffee",{}]')
    reply = await conn.next_out()
    assert reply[:3] == [4, "m1", "NotImplemented"]


async def test_rpc_known_action_without_handler_is_not_supported(station16):
    _, conn = station16
    # Every CSMS-initiated 1.6 action has a handler; Heartbeat is one only a station sends.
    await conn.inbox.put('[2,"m1","Heartbeat",{}]')
    reply = await conn.next_out()
    assert reply[:3] == [4, "m1", "NotSupported"]


async def test_rpc_16_spells_formation_violation(station16):
    _, conn = station16
    await conn.inbox.put('[2,"m1","ClearCache",{"unexpected":1}]')
    reply = await conn.next_out()
    assert reply[:3] == [4, "m1", "FormationViolation"]
    assert len(json.dumps(reply)) < 400  # no schema or message echoed back


async def test_rpc_201_spells_format_violation(station201):
    _, conn = station201
    await conn.inbox.put('[2,"m1","Heartbeat",{"unexpected":1}]')
    reply = await conn.next_out()
    assert reply[:3] == [4, "m1", "NotSupported"]  # Heartbeat is known but CSMS->CS has no handler
    await conn.inbox.put('[2,"m2","ClearCache",[]]')
    reply = await conn.next_out()
    assert reply[:3] == [4, "m2", "FormatViolation"]


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"connectorId": "1", "type": "Operative"}, "TypeConstraintViolation"),
        ({"connectorId": 1}, "ProtocolError"),
        ({"connectorId": 1, "type": "Sideways"}, "PropertyConstraintViolation"),
    ],
)
async def test_rpc_16_schema_errors_map_to_spec_codes(station16, payload, code):
    _, conn = station16
    await conn.inbox.put(json.dumps([2, "m1", "ChangeAvailability", payload]))
    reply = await conn.next_out()
    assert reply[:3] == [4, "m1", code]


async def test_rpc_201_missing_field_is_occurrence_violation():
    class WithHandler(Station201):
        @on("ChangeAvailability")
        def on_change_availability(self, operational_status, **_):
            raise AssertionError("must not be called with an invalid payload")

    adapter, conn = make(WithHandler)
    await adapter.route_message('[2,"m1","ChangeAvailability",{}]')
    assert (await conn.next_out())[:3] == [4, "m1", "OccurrenceConstraintViolation"]


async def test_rpc_incoming_date_time_format_is_checked(station16):
    _, conn = station16
    await conn.inbox.put('[2,"m1","ReserveNow",{"connectorId":1,"expiryDate":"tomorrow","idTag":"A","reservationId":1}]')
    assert (await conn.next_out())[:3] == [4, "m1", "PropertyConstraintViolation"]
    await conn.inbox.put('[2,"m2","ReserveNow",{"connectorId":1,"expiryDate":"2026-11-21T10:00:00Z","idTag":"A","reservationId":1}]')
    assert (await conn.next_out())[:3] == [3, "m2", {"status": "Rejected"}]


async def test_rpc_response_date_time_format_is_checked(station16):
    adapter, conn = station16
    task = asyncio.create_task(adapter.call(call16.Heartbeat()))
    sent = await conn.next_out()
    await conn.inbox.put(json.dumps([3, sent[1], {"currentTime": "not-a-date"}]))
    with pytest.raises(InvalidResponse, match="currentTime"):
        await task


@pytest.mark.parametrize("raw", ["{not json", "[2, \"unterminated"])
async def test_rpc_invalid_json_gets_callerror_with_id_minus_one(station16, station201, raw):
    _, conn16 = station16
    _, conn201 = station201
    await conn16.inbox.put(raw)
    await conn201.inbox.put(raw)
    assert (await conn16.next_out())[:3] == [4, "-1", "FormationViolation"]
    assert (await conn201.next_out())[:3] == [4, "-1", "RpcFrameworkError"]


async def test_rpc_unknown_message_type_answered(station201):
    _, conn = station201
    await conn.inbox.put('[7,"m9","Heartbeat",{}]')
    assert (await conn.next_out())[:3] == [4, "m9", "MessageTypeNotSupported"]


async def test_rpc_valid_json_that_is_not_an_array(station16):
    _, conn = station16
    await conn.inbox.put('{"hello": 1}')
    assert (await conn.next_out())[:2] == [4, "-1"]


async def test_rpc_handler_exception_is_internal_error_and_reader_survives(station16):
    _, conn = station16
    await conn.inbox.put('[2,"m1","GetConfiguration",{}]')
    assert (await conn.next_out())[:3] == [4, "m1", "InternalError"]
    await conn.inbox.put('[2,"m2","ClearCache",{}]')
    assert await conn.next_out() == [3, "m2", {"status": "Accepted"}]


async def test_rpc_call_returns_typed_result(station16):
    adapter, conn = station16
    task = asyncio.create_task(adapter.call(call16.Heartbeat()))
    sent = await conn.next_out()
    assert sent == [2, "id-1", "Heartbeat", {}]
    await conn.inbox.put(json.dumps([3, "id-1", {"currentTime": "2026-11-21T10:00:00.000Z"}]))
    result = await task
    assert result.current_time == "2026-11-21T10:00:00.000Z"


async def test_rpc_callerror_reply_raises(station16):
    adapter, conn = station16
    task = asyncio.create_task(adapter.call(call16.Heartbeat()))
    await conn.next_out()
    await conn.inbox.put('[4,"id-1","InternalError","oops",{}]')
    with pytest.raises(CallErrorReceived) as info:
        await task
    assert info.value.code == "InternalError"


async def test_rpc_reply_with_unknown_id_is_dropped(station16, caplog):
    adapter, conn = station16
    task = asyncio.create_task(adapter.call(call16.Heartbeat()))
    await conn.next_out()
    await conn.inbox.put(json.dumps([3, "someone-else", {"currentTime": "2026-11-21T10:00:00Z"}]))
    await conn.inbox.put(json.dumps([3, "id-1", {"currentTime": "2026-11-21T10:00:01Z"}]))
    assert (await task).current_time == "2026-11-21T10:00:01Z"
    assert "unknown message id" in caplog.text


async def test_rpc_pending_call_fails_at_once_when_connection_drops(station16):
    adapter, conn = station16
    adapter._response_timeout = 30
    task = asyncio.create_task(adapter.call(call16.Heartbeat()))
    await conn.next_out()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await conn.inbox.put(None)  # the connection ends
    with pytest.raises(CallAborted):
        await task
    assert loop.time() - started < 0.5


async def test_rpc_call_times_out(station16):
    adapter, conn = station16
    adapter._response_timeout = 0.1
    with pytest.raises(CallTimeout):
        await adapter.call(call16.Heartbeat())


async def test_rpc_only_one_call_outstanding(station16):
    adapter, conn = station16
    first = asyncio.create_task(adapter.call(call16.Heartbeat()))
    second = asyncio.create_task(adapter.call(call16.Heartbeat()))
    assert (await conn.next_out())[1] == "id-1"
    with pytest.raises(asyncio.TimeoutError):
        await conn.next_out(timeout=0.1)  # the second waits for the first reply
    await conn.inbox.put('[3,"id-1",{"currentTime":"2026-11-21T10:00:00Z"}]')
    assert (await conn.next_out())[1] == "id-2"
    await conn.inbox.put('[3,"id-2",{"currentTime":"2026-11-21T10:00:00Z"}]')
    await asyncio.gather(first, second)


async def test_rpc_refuses_to_send_invalid_payload(station16):
    adapter, _ = station16
    with pytest.raises(ValueError, match="idTag"):
        await adapter.call(call16.Authorize(id_tag="X" * 21))


async def test_rpc_16_silent_while_rejected(station16):
    adapter, conn = station16
    adapter.registration = "Rejected"
    await conn.inbox.put('[2,"m1","ClearCache",{}]')
    with pytest.raises(asyncio.TimeoutError):
        await conn.next_out(timeout=0.2)


def test_memoized_key_conversion_matches_the_library():
    """agent.protocol.common.case_keys converts exactly as the ocpp library does (it only remembers the answers)."""
    from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case

    from agent.protocol.common.case_keys import to_camel, to_snake

    sample = {"connectorId": 1, "idTagInfo": {"parentIdTag": "x", "expiryDate": None},
              "ocppCSMSURL": "ws://x", "chargingSchedule": [{"chargingSchedulePeriod": [{"startPeriod": 0}]}],
              "V2GCertificateChain": [], "evseId": 2, "soc": 1, "SOCLimitReached": True}
    assert to_snake(sample) == camel_to_snake_case(sample)
    snake = camel_to_snake_case(sample)
    assert to_camel(snake) == snake_to_camel_case(snake)


PROFILE16 = {"connectorId": 1, "csChargingProfiles": {
    "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute", "chargingSchedule": {
        "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]}}}


@pytest.mark.parametrize("version, message_type, action, payload", [
    ("1.6", 2, "ChangeAvailability", {"connectorId": 1, "type": "Operative"}),
    ("1.6", 2, "ChangeAvailability", {"connectorId": True, "type": "Operative"}),
    ("1.6", 2, "ChangeAvailability", {"connectorId": 1.0, "type": "Operative"}),
    ("1.6", 2, "ChangeAvailability", {"connectorId": 1, "type": "Operative", "extra": 1}),
    ("1.6", 2, "ReserveNow", {"connectorId": 1, "expiryDate": "tomorrow", "idTag": "A", "reservationId": 1}),
    ("1.6", 2, "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                 "localAuthorizationList": [{"idTag": "A"}, {"idTag": "B" * 21}]}),
    ("1.6", 3, "GetConfiguration", {"configurationKey": [{"key": "K", "readonly": "no"}]}),
    ("1.6", 2, "SetChargingProfile", PROFILE16),
    ("2.0.1", 2, "GetVariables", {"getVariableData": [{"component": {"name": "C"}, "variable": {"name": "V"}}]}),
    ("2.0.1", 2, "GetVariables", {"getVariableData": [{"component": {"name": "C", "evse": {"id": "1"}},
                                                       "variable": {"name": "V"}}]}),
    ("2.0.1", 3, "GetVariables", {"getVariableResult": [{"attributeStatus": "Maybe", "component": {"name": "C"},
                                                         "variable": {"name": "V"}}]}),
    ("2.0.1", 2, "GetVariables", {"getVariableData": []}),
])
def test_rpc_validate_answers_as_jsonschema_alone_does(monkeypatch, version, message_type, action, payload):
    """The fast check only decides "valid"; every verdict and error text is jsonschema's."""
    from agent.protocol.common import rpc

    key = (version, message_type, action)
    answer = rpc.validate(*key, payload)
    assert rpc._fast_checks[key] is not None  # the fast path was in use
    monkeypatch.setitem(rpc._fast_checks, key, None)
    assert answer == rpc.validate(*key, payload)


def test_rpc_decimal_actions_keep_their_tenths():
    """SetChargingProfile's multipleOf 0.1 still holds 21.4 valid and 21.45 invalid on the fast path."""
    from agent.protocol.common import rpc

    assert rpc.validate("1.6", 2, "SetChargingProfile", PROFILE16) is None
    bad = json.loads(json.dumps(PROFILE16).replace("21.4", "21.45"))
    meaning, description = rpc.validate("1.6", 2, "SetChargingProfile", bad)
    assert meaning == "property" and "multiple of 0.1" in description


@pytest.mark.parametrize("limit", ["1e40", "1e400", "NaN"])
def test_rpc_a_number_the_schema_rules_cannot_handle_is_a_property_violation(limit):
    """jsonschema's multipleOf raises on such Decimals; the station refuses the value instead of failing."""
    import json as _json

    from agent.protocol.common import rpc

    payload = _json.loads('{"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0, '
                          '"chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute", '
                          '"chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": '
                          '[{"startPeriod": 0, "limit": ' + limit + '}]}}}')
    assert rpc.validate("1.6", 2, "SetChargingProfile", payload)[0] == "property"
