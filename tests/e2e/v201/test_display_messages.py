"""Display messages (2.0.1 block O) and the running cost (CostUpdated): the selection logic, the service,
and end to end against the CSMS simulator."""

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v201 import call as call201

from agent.runtime.clock import Clock, format_iso
from agent.core.device_model.display_messages import (
    DisplayMessage,
    DisplayMessages,
    SetResult,
    next_change,
    pick,
    rotation,
    station_states,
)
from agent.core.charging.model import ConnectorStatus
from agent.protocol.v201.display import MESSAGES_PER_NOTIFY, message_from_201, message_to_201
from agent.runtime.settings import Settings
from tests.harness import agent_config, running_agent, wait_until

S = ConnectorStatus
CARD = "04A1B2C3"


def msg(id, content=None, priority="NormalCycle", **extra):
    return DisplayMessage(id=id, priority=priority, content=content or f"message {id}", **extra)


# ------------------------------------------------------------------ selection (pure)


def statuses(*evses, station=S.AVAILABLE):
    return {0: (station, None), **{i: (status, None) for i, status in enumerate(evses, start=1)}}


def test_station_states_from_the_statuses():
    assert station_states(statuses(S.AVAILABLE, S.RESERVED)) == {"Idle"}
    assert station_states(statuses(S.CHARGING, S.AVAILABLE)) == {"Charging"}
    assert station_states(statuses(S.SUSPENDED_EV)) == {"Charging"}
    assert station_states(statuses(S.PREPARING)) == frozenset()  # plugged in, not charging yet: not idle either
    assert station_states(statuses(S.CHARGING, S.FAULTED)) == {"Charging", "Faulted"}
    assert station_states(statuses(S.UNAVAILABLE, S.UNAVAILABLE)) == {"Unavailable"}
    assert station_states(statuses(S.UNAVAILABLE, S.AVAILABLE)) == frozenset()  # one EVSE still works
    assert station_states(statuses(S.CHARGING, station=S.UNAVAILABLE)) == {"Charging", "Unavailable"}


def test_rotation_priorities():
    idle = frozenset({"Idle"})
    normal = [msg(1), msg(2)]
    assert rotation(normal, now=0, states=idle) == ("NormalCycle", [(("message", 1), "message 1"),
                                                                    (("message", 2), "message 2")])
    front = [*normal, msg(3, priority="InFront"), msg(4, priority="InFront")]
    assert rotation(front, now=0, states=idle)[0] == "InFront"
    assert [key for key, _ in rotation(front, now=0, states=idle)[1]] == [("message", 3), ("message", 4)]
    always = [*front, msg(5, priority="AlwaysFront", seq=9), msg(6, priority="AlwaysFront", seq=7)]
    assert rotation(always, now=0, states=idle) == ("AlwaysFront", [(("message", 5), "message 5")])  # newest
    assert rotation([], now=0, states=idle) == (None, [])


def test_rotation_states_times_and_costs():
    messages = [msg(1, state="Charging"), msg(2, start=10.0, end=20.0), msg(3, priority="InFront", end=5.0)]
    assert rotation(messages, now=1, states=frozenset({"Idle"}))[1] == [(("message", 3), "message 3")]
    assert rotation(messages, now=5, states=frozenset({"Idle"})) == (None, [])  # 3 ended, 2 not begun
    assert [k for k, _ in rotation(messages, now=10, states=frozenset({"Charging"}))[1]] == [("message", 1),
                                                                                             ("message", 2)]
    assert rotation(messages, now=20, states=frozenset({"Idle"})) == (None, [])
    costs = [("tx-1", "Cost: 1.00 EUR")]
    assert rotation([], costs, now=0, states=frozenset()) == ("NormalCycle", [(("cost", "tx-1"), "Cost: 1.00 EUR")])
    assert rotation([msg(3, priority="InFront")], costs, now=0, states=frozenset())[0] == "InFront"  # cost waits


def test_pick_keeps_advances_and_restarts():
    cycle = [(("message", 1), "a"), (("message", 2), "b")]
    assert pick(cycle, None) == cycle[0]
    assert pick(cycle, ("message", 2)) == cycle[1]
    assert pick(cycle, ("message", 2), advance=True) == cycle[0]
    assert pick(cycle, ("message", 9)) == cycle[0]
    assert pick([], ("message", 1)) is None


def test_next_change_is_the_next_boundary():
    messages = [msg(1, start=10.0, end=30.0), msg(2, end=20.0), msg(3)]
    assert next_change(messages, 0.0) == 10.0
    assert next_change(messages, 10.0) == 20.0
    assert next_change(messages, 25.0) == 30.0
    assert next_change(messages, 30.0) is None


def test_message_rejects_unknown_enumerations():
    for bad in ({"priority": "Sometimes"}, {"state": "Sleeping"}, {"format": "PDF"}):
        with pytest.raises(ValueError):
            DisplayMessage(**{"id": 1, "priority": "NormalCycle", "content": "x", **bad})


def test_message_info_round_trip():
    info = {"id": 7, "priority": "InFront", "state": "Charging", "transaction_id": "tx-1",
            "start_date_time": "2030-01-01T10:00:00Z", "end_date_time": "2030-01-01T11:00:00.000Z",
            "message": {"format": "UTF8", "language": "de", "content": "Grüezi"},
            "display": {"name": "Display", "evse": {"id": 1}}}
    message = message_from_201(info)
    assert message.start == 1893492000.0 and message.end == 1893495600.0
    assert message_to_201(message) == {**info, "start_date_time": "2030-01-01T10:00:00.000Z"}
    with pytest.raises(ValueError):
        message_from_201({**info, "end_date_time": "tomorrow"})


# ------------------------------------------------------------------ the service, with a stand-in station


class FakeDisplay:
    """A display that records what it was asked to show; ``fail`` makes it raise."""

    def __init__(self):
        self.text, self.shown, self.fail = None, [], False

    def show(self, text):
        if self.fail:
            raise OSError("display unplugged")
        self.text = text
        self.shown.append(text)


class FakeStation:
    """The station as the service sees it: statuses, EVSE machines, and its listener hook."""

    def __init__(self, statuses):
        self.statuses = statuses
        self.evses = {}
        self.listeners = []
        self.show_text = None

    def add_listener(self, changed):
        self.listeners.append(changed)

    def changed(self):
        for listener in self.listeners:
            listener()


class FakeMachine:
    """An EVSE machine as the service sees it: a transaction, and the station's callbacks."""

    def __init__(self, station, evse_id):
        self.transaction = None
        self.evse_id = evse_id
        self._station = station

    def _on_status(self, evse, status, error):
        self._station.statuses[evse] = (status, error)
        self._station.changed()

    def run(self, ref):
        self.transaction = SimpleNamespace(ref=ref) if ref else None
        self._station.changed()


@pytest.fixture
def parts(store):
    station = FakeStation(statuses(S.AVAILABLE))
    station.evses = {1: FakeMachine(station, 1)}
    return SimpleNamespace(station=station, display=FakeDisplay(), settings=Settings(store), store=store)


@pytest.fixture
async def service(parts):
    service = DisplayMessages(parts.store, station=parts.station, display=parts.display, settings=parts.settings,
                              clock=Clock(), rotate_s=0.05)
    service.start()
    yield service
    service.close()


async def test_service_installs_shows_and_clears(service, parts):
    assert service.install(msg(1, "Welcome")) is SetResult.ACCEPTED
    assert parts.display.text == "Welcome" and len(service) == 1
    assert service.install(msg(1, "Welcome back")) is SetResult.ACCEPTED  # same id: replaced
    assert parts.display.text == "Welcome back" and len(service) == 1
    assert service.clear(1) and not service.clear(1)
    assert parts.display.text is None


async def test_service_refuses_what_it_cannot_show(service, parts):
    assert service.install(msg(1, format="HTML")) is SetResult.NOT_SUPPORTED_FORMAT
    assert service.install(msg(1, format="URI")) is SetResult.NOT_SUPPORTED_FORMAT
    assert service.install(msg(1, transaction_id="nope")) is SetResult.UNKNOWN_TRANSACTION
    assert service.install(msg(1, end=time.time() - 1)) is SetResult.REJECTED
    assert service.install(msg(1, start=time.time() + 20, end=time.time() + 10)) is SetResult.REJECTED
    for i in range(service.limit):
        assert service.install(msg(i)) is SetResult.ACCEPTED
    assert service.install(msg(service.limit)) is SetResult.REJECTED  # full
    assert service.install(msg(0, "replaced")) is SetResult.ACCEPTED  # replacing needs no room
    parts.settings.set("display_messages_enabled", False)
    assert service.install(msg(99)) is SetResult.REJECTED
    await asyncio.sleep(0)
    assert parts.display.text is None  # switched off: installed messages are not shown either


async def test_service_without_a_display_refuses_every_message(parts):
    service = DisplayMessages(parts.store, station=parts.station, display=None, settings=parts.settings,
                              clock=Clock())
    service.start()
    assert service.install(msg(1)) is SetResult.REJECTED
    assert service.variables()["DisplayMessageCtrlr.Available"]() is False
    assert service.variables()["DisplayMessageCtrlr.SupportedFormats"]() == ()
    service.close()


async def test_service_rotates_only_while_several_share_the_display(service, parts):
    service.install(msg(1, "one"))
    await asyncio.sleep(0.12)
    assert service._turn_timer is None and parts.display.shown == ["one"]  # alone: no timer at all
    service.install(msg(2, "two"))
    await wait_until(lambda: parts.display.shown[-3:] == ["one", "two", "one"], timeout=1)
    service.install(msg(3, "front", priority="InFront"))
    assert parts.display.text == "front" and service._turn_timer is None


async def test_service_follows_the_station(service, parts):
    machine = parts.station.evses[1]
    service.install(msg(1, "Charging now", state="Charging"))
    assert parts.display.text is None
    machine._on_status(1, S.CHARGING, None)
    await asyncio.sleep(0)
    assert parts.display.text == "Charging now"
    machine.run("tx-1")
    assert service.install(msg(2, "Your session", priority="InFront", transaction_id="tx-1")) is SetResult.ACCEPTED
    assert service.cost_updated("tx-1", 4.271) and not service.cost_updated("tx-2", 1.0)
    assert parts.display.text == "Your session"
    machine.run(None)  # the transaction ends: its message and its cost go
    machine._on_status(1, S.FINISHING, None)
    await asyncio.sleep(0)
    assert [m.id for m in service.find()] == [1] and parts.display.text is None


async def test_service_cost_uses_the_currency_and_can_be_switched_off(service, parts):
    parts.station.evses[1].run("tx-1")
    parts.settings.set("currency", "CHF")
    service.cost_updated("tx-1", 4.271)
    assert parts.display.text == "Cost: 4.27 CHF"
    parts.settings.set("total_cost_enabled", False)
    await asyncio.sleep(0)
    assert parts.display.text is None


async def test_service_expires_messages_by_timer(service, parts):
    now = time.time()
    service.install(msg(1, "soon", start=now + 0.05, end=now + 0.1))
    assert parts.display.text is None and service._change_timer is not None
    await wait_until(lambda: parts.display.text == "soon", timeout=1)
    await wait_until(lambda: parts.display.text is None, timeout=1)
    assert len(service) == 0 and service._change_timer is None  # nothing left to wait for: no timer


async def test_service_display_errors_are_logged_not_raised(service, parts, caplog):
    parts.display.fail = True
    with caplog.at_level(logging.ERROR):
        assert service.install(msg(1, "hello")) is SetResult.ACCEPTED
    assert "cannot show 'hello'" in caplog.text
    parts.display.fail = False
    service.install(msg(2, "again", priority="InFront"))
    assert parts.display.text == "again"


async def test_service_station_text_holds_but_never_over_always_front(service, parts):
    service.install(msg(1, "Welcome"))
    assert service.station_message("Card refused", hold_s=0.05)
    service.install(msg(2, "Also"))  # a change while the station's text holds: it stays
    assert parts.display.text == "Card refused"
    await wait_until(lambda: parts.display.text == "Welcome", timeout=1)
    service.install(msg(3, "Closed today", priority="AlwaysFront"))
    assert not service.station_message("Card refused")
    assert parts.display.text == "Closed today"


async def test_service_blanks_only_its_own_text(service, parts):
    parts.display.show("Plug in your vehicle")  # the station's own text, written past the service
    service.install(msg(1, "Hello", end=time.time() + 0.05))
    await wait_until(lambda: parts.display.text is None, timeout=1)
    parts.display.show("Card refused")
    service.refresh()
    await asyncio.sleep(0.01)
    assert parts.display.text == "Card refused"


async def test_service_persists_and_drops_what_ended_while_down(parts):
    first = DisplayMessages(parts.store, station=parts.station, display=parts.display, settings=parts.settings,
                            clock=Clock())
    first.start()
    parts.station.evses[1].run("tx-1")
    first.install(msg(1, "stays"))
    first.install(msg(2, "for the session", transaction_id="tx-1"))
    first.close()
    parts.store.put("display:messages", [*parts.store.get("display:messages"), {"id": 3, "priority": "Never"}])
    parts.station.evses[1].transaction = None  # ended while the agent was down
    second = DisplayMessages(parts.store, station=parts.station, display=FakeDisplay(), settings=parts.settings,
                             clock=Clock())
    second.start()
    assert [m.id for m in second.find()] == [1] and second.display.text == "stays"
    second.close()


async def test_service_find_filters(service):
    service.install(msg(1, priority="InFront", state="Idle"))
    service.install(msg(2, state="Idle"))
    service.install(msg(3))
    assert [m.id for m in service.find()] == [1, 2, 3]
    assert [m.id for m in service.find(ids=[3, 9])] == [3]
    assert [m.id for m in service.find(priority="NormalCycle", state="Idle")] == [2]
    assert service.find(state="Faulted") == []
    assert service.variables()["DisplayMessageCtrlr.DisplayMessages"]() == 3


# ------------------------------------------------------------------ end to end


def config(tmp_path, csms, **variables):
    return agent_config(tmp_path, csms.url, ocpp_version="2.0.1", variables=variables)


async def connected(csms):
    await csms.wait_for(lambda: csms.calls("StatusNotification"))


async def set_message(csms, id, content, priority="NormalCycle", *, format="UTF8", language=None, **extra):
    text = {"format": format, "content": content, **({"language": language} if language else {})}
    message = {"id": id, "priority": priority, "message": text, **extra}
    return (await csms.call("CP1", call201.SetDisplayMessage(message=message))).status


async def clear_message(csms, id):
    return (await csms.call("CP1", call201.ClearDisplayMessage(id=id))).status


def shown(agent):
    return agent.hal.display.text


def events(csms):
    return [r.payload for r in csms.calls("TransactionEvent")]


async def charge(agent, csms):
    agent.hal.plug(1)
    agent.hal.tap(CARD)
    await csms.wait_for(lambda: any(e["eventType"] == "Started" for e in events(csms)))
    agent.hal.ev_charge(1, True)
    await wait_until(lambda: agent.station.statuses[1][0] is S.CHARGING)
    return events(csms)[0]["transactionInfo"]["transactionId"]


async def stop(agent, csms):
    agent.hal.tap(CARD)
    await csms.wait_for(lambda: events(csms)[-1]["eventType"] == "Ended")


async def test_display_set_clear_and_device_model(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await connected(csms)
        assert await set_message(csms, 1, "Welcome to Acme", language="en") == "Accepted"
        await wait_until(lambda: shown(agent) == "Welcome to Acme")
        assert await set_message(csms, 2, "<b>Hi</b>", format="HTML") == "NotSupportedMessageFormat"
        assert await set_message(csms, 3, "https://acme.example", format="URI") == "NotSupportedMessageFormat"
        with pytest.raises(PropertyConstraintViolationError):  # the adapter checks date-times itself
            await set_message(csms, 4, "Bad time", end_date_time="soon")
        result = await csms.call("CP1", call201.GetVariables(get_variable_data=[
            {"component": {"name": "DisplayMessageCtrlr"}, "variable": {"name": name}}
            for name in ("Available", "Enabled", "DisplayMessages", "SupportedFormats", "SupportedPriorities")]))
        values = [r["attribute_value"] for r in result.get_variable_result]
        assert values == ["true", "true", "1", "ASCII,UTF8", "AlwaysFront,InFront,NormalCycle"]
        assert await clear_message(csms, 1) == "Accepted"
        await wait_until(lambda: shown(agent) is None)
        assert await clear_message(csms, 1) == "Unknown"


async def test_display_priorities_and_rotation(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await connected(csms)
        agent.core.display_messages.rotate_s = 0.1
        await set_message(csms, 1, "Normal A")
        await set_message(csms, 2, "Normal B")
        await wait_until(lambda: agent.hal.recorder.values("display")[-3:] in (
            ["Normal A", "Normal B", "Normal A"], ["Normal B", "Normal A", "Normal B"]), timeout=2)
        await set_message(csms, 3, "In front", "InFront")
        await wait_until(lambda: shown(agent) == "In front")
        await set_message(csms, 4, "Always first", "AlwaysFront")
        await set_message(csms, 5, "Always newest", "AlwaysFront")
        await wait_until(lambda: shown(agent) == "Always newest")
        await asyncio.sleep(0.3)  # no rotation over an AlwaysFront message
        assert shown(agent) == "Always newest"
        await clear_message(csms, 5)
        await wait_until(lambda: shown(agent) == "Always first")
        await clear_message(csms, 4)
        await wait_until(lambda: shown(agent) == "In front")
        await clear_message(csms, 3)
        await wait_until(lambda: shown(agent) in ("Normal A", "Normal B"))


async def test_display_state_specific_messages(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await connected(csms)
        assert await set_message(csms, 1, "Tap your card to start", state="Idle") == "Accepted"
        assert await set_message(csms, 2, "Charging - thank you", state="Charging") == "Accepted"
        await wait_until(lambda: shown(agent) == "Tap your card to start")
        await charge(agent, csms)
        await wait_until(lambda: shown(agent) == "Charging - thank you")
        await stop(agent, csms)
        await wait_until(lambda: shown(agent) is None)  # finishing: neither idle nor charging
        agent.hal.unplug(1)
        await wait_until(lambda: shown(agent) == "Tap your card to start")


async def test_display_start_and_end_times(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await connected(csms)
        now = agent.clock.time()
        assert await set_message(csms, 1, "Short notice", start_date_time=format_iso(now + 0.4),
                                 end_date_time=format_iso(now + 0.9)) == "Accepted"
        assert shown(agent) is None
        await wait_until(lambda: shown(agent) == "Short notice", timeout=2)
        await wait_until(lambda: shown(agent) is None, timeout=2)
        status = await csms.call("CP1", call201.GetDisplayMessages(request_id=1))
        assert status.status == "Unknown"  # an ended message is removed


async def test_display_transaction_message_and_cost(tmp_path, csms):
    async with running_agent(config(tmp_path, csms, **{"TariffCostCtrlr.Currency": "CHF"})) as agent:
        await connected(csms)
        assert await set_message(csms, 1, "Not yours", transaction_id="no-such-tx") == "UnknownTransaction"
        tx_id = await charge(agent, csms)
        await csms.call("CP1", call201.CostUpdated(total_cost=4.271, transaction_id=tx_id))
        await wait_until(lambda: shown(agent) == "Cost: 4.27 CHF")
        assert await set_message(csms, 2, "Session 42: green energy", "InFront", transaction_id=tx_id) == "Accepted"
        await wait_until(lambda: shown(agent) == "Session 42: green energy")
        await stop(agent, csms)
        await wait_until(lambda: shown(agent) is None)
        assert (await csms.call("CP1", call201.GetDisplayMessages(request_id=7))).status == "Unknown"


def notified(csms, request_id):
    return [r.payload for r in csms.calls("NotifyDisplayMessages") if r.payload["requestId"] == request_id]


async def test_display_get_messages_filters_and_chunks(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await connected(csms)
        count = MESSAGES_PER_NOTIFY + 2
        for i in range(1, count + 1):
            priority = "InFront" if i % 5 == 0 else "NormalCycle"
            extra = {"state": "Charging"} if i % 3 == 0 else {}
            assert await set_message(csms, i, f"Message {i}", priority, **extra) == "Accepted"
        result = await csms.call("CP1", call201.GetDisplayMessages(request_id=1))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: len(notified(csms, 1)) == 2)
        first, second = notified(csms, 1)
        assert (first["tbc"], second["tbc"]) == (True, False)
        assert [m["id"] for m in first["messageInfo"] + second["messageInfo"]] == list(range(1, count + 1))
        assert first["messageInfo"][2] == {"id": 3, "priority": "NormalCycle", "state": "Charging",
                                           "message": {"format": "UTF8", "content": "Message 3"}}
        result = await csms.call("CP1", call201.GetDisplayMessages(request_id=2, priority="InFront"))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: notified(csms, 2))
        assert [m["id"] for m in notified(csms, 2)[0]["messageInfo"]] == [5, 10]
        assert notified(csms, 2)[0]["tbc"] is False
        await csms.call("CP1", call201.GetDisplayMessages(request_id=3, id=[3, 4, 99], state="Charging"))
        await csms.wait_for(lambda: notified(csms, 3))
        assert [m["id"] for m in notified(csms, 3)[0]["messageInfo"]] == [3]
        result = await csms.call("CP1", call201.GetDisplayMessages(request_id=4, id=[99]))
        assert result.status == "Unknown"
        await asyncio.sleep(0.2)
        assert not notified(csms, 4) and agent.hal.display.text is not None


async def test_display_messages_survive_a_restart(tmp_path, csms):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        await connected(csms)
        assert await set_message(csms, 1, "Back soon", "InFront") == "Accepted"
        await wait_until(lambda: shown(agent) == "Back soon")
    async with running_agent(cfg) as agent:
        assert shown(agent) == "Back soon"  # shown from the store at start-up, before the CSMS answers
        await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2)
        result = await csms.call("CP1", call201.GetDisplayMessages(request_id=5))
        assert result.status == "Accepted"


async def test_service_takes_over_the_station_texts(service, parts):
    """The station's own texts ("Card refused") go through the service, so AlwaysFront stays in front."""
    assert parts.station.show_text == service.station_message
    assert len(parts.station.listeners) == 1


async def test_display_tariff_from_the_csms_answers(tmp_path, csms):
    """I: a personalMessage in Authorize/TransactionEvent answers and their totalCost reach the display."""
    csms.behaviour.personal_message = "Welcome Jane: 0.39 EUR/kWh"
    async with running_agent(config(tmp_path, csms)) as agent:
        await connected(csms)
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        await wait_until(lambda: shown(agent) == "Welcome Jane: 0.39 EUR/kWh", timeout=3)
        await csms.wait_for(lambda: any(e["eventType"] == "Started" for e in events(csms)))
        agent.hal.ev_charge(1, True)
        await wait_until(lambda: agent.station.statuses[1][0] is S.CHARGING)
        csms.behaviour.personal_message, csms.behaviour.total_cost = None, 1.5
        # The next TransactionEvent's answer carries the running cost; it shows once the greeting's
        # 15 s are up (ended here at once, rather than waiting).
        agent.core.display_messages._own_done()
        await csms.call("CP1", call201.TriggerMessage(requested_message="TransactionEvent", evse={"id": 1}))
        await wait_until(lambda: shown(agent) == "Cost: 1.50 EUR", timeout=3)
        csms.behaviour.total_cost = 2.25
        await stop(agent, csms)
        await wait_until(lambda: shown(agent) == "Total: 2.25 EUR", timeout=3)
