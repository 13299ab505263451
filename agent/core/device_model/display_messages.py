"""Display messages (OCPP 2.0.1 block O) and the running cost (CostUpdated), in version-neutral form.

The CSMS installs messages; this module decides which one the station's display
shows now:

* AlwaysFront beats everything (the newest one installed wins), InFront beats
  NormalCycle; several messages of the winning priority take turns.
* A message with a state shows only while the station is in that state, one with
  start/end times only between them, one for a transaction only while that
  transaction runs; it is removed when the transaction ends, or when its end time
  has passed.
* The running cost of a transaction takes its turn in the normal cycle while that
  transaction runs: the CSMS's (CostUpdated, or totalCost in a TransactionEvent's answer)
  while it is fresh, else the station's own (OCPP 2.1 local cost calculation, see
  :meth:`DisplayMessages.local_cost`).

Nothing polls: a timer wakes at the next start or end time and, while several
items share the display, at the next turn; the station's status and transaction
changes wake an evaluation. The messages are kept in the state store, so they
survive a restart. The display must never block or crash charging: every error
on the way to it is logged, never raised into the caller.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from agent.core.charging.model import ConnectorStatus

log = logging.getLogger("agent.display")

_KEY = "display:messages"

ALWAYS_FRONT, IN_FRONT, NORMAL_CYCLE = "AlwaysFront", "InFront", "NormalCycle"
PRIORITIES = (ALWAYS_FRONT, IN_FRONT, NORMAL_CYCLE)
STATES = ("Charging", "Faulted", "Idle", "Unavailable")
FORMATS = ("ASCII", "HTML", "URI", "UTF8")
TEXT_FORMATS = ("ASCII", "UTF8")
"""What a display renders when its driver declares no ``formats``: every display we drive is text."""

ROTATE_S = 5.0  # how long each item of a cycle stays on the display
CSMS_COST_FRESH_S = 60.0  # how long the CSMS's running cost outranks the station's own (local_cost)
STATION_MESSAGE_S = 5.0  # how long the station's own text ("Card refused") holds the display
PERSONAL_MESSAGE_S = 15.0  # a tariff or greeting the driver must have time to read


_CHARGING = (ConnectorStatus.CHARGING, ConnectorStatus.SUSPENDED_EV, ConnectorStatus.SUSPENDED_EVSE)
_IDLE = (ConnectorStatus.AVAILABLE, ConnectorStatus.RESERVED)
_SETTINGS = ("display_messages_enabled", "total_cost_enabled", "currency")

Item = tuple[tuple[str, Any], str]
"""One thing that can be on the display: a key (("message", id) or ("cost", transaction)) and its text."""


class SetResult(str, enum.Enum):
    """The verdict on an installed message (2.0.1 DisplayMessageStatusEnumType's words)."""

    ACCEPTED = "Accepted"
    NOT_SUPPORTED_FORMAT = "NotSupportedMessageFormat"
    REJECTED = "Rejected"
    UNKNOWN_TRANSACTION = "UnknownTransaction"


@dataclass(frozen=True)
class DisplayMessage:
    """One message the CSMS installed. ``start``/``end`` are Unix times (None: unbounded).

    ``display`` is the display component the CSMS named, kept only to report it
    back (this station has one display). ``seq`` orders installations: of several
    AlwaysFront messages the newest one is shown.
    """

    id: int
    priority: str
    content: str
    format: str = "UTF8"
    language: str | None = None
    state: str | None = None
    start: float | None = None
    end: float | None = None
    transaction_id: str | None = None
    display: dict | None = None
    seq: int = 0

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise ValueError(f"unknown priority {self.priority!r}")
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}")

    def in_window(self, now: float) -> bool:
        """Between its start and end time (start included, end excluded)."""
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)

    def matches(self, *, ids: Iterable[int] | None = None, priority: str | None = None,
                state: str | None = None) -> bool:
        """GetDisplayMessages' filters: every one given must match."""
        return ((not ids or self.id in set(ids)) and (priority is None or self.priority == priority)
                and (state is None or self.state == state))


# ------------------------------------------------------------------ selection (pure)


def station_states(statuses: Mapping[int, tuple[ConnectorStatus, str | None]]) -> frozenset[str]:
    """The message states (Charging, Faulted, Idle, Unavailable) the station is in now; several EVSEs
    may put it in several at once (one charging, one faulted).

    Charging covers a session with the power path ready (Charging, SuspendedEV, SuspendedEVSE); Idle
    means every EVSE is free (Available or Reserved). Preparing and Finishing are neither.

    ``statuses`` is ChargingStation.statuses: EVSE id -> (status, error), 0 the station itself.
    """
    station = statuses.get(0, (ConnectorStatus.AVAILABLE, None))[0]
    evses = [status for evse_id, (status, _) in statuses.items() if evse_id != 0]
    states = set()
    if any(s in _CHARGING for s in evses):
        states.add("Charging")
    if station is ConnectorStatus.FAULTED or ConnectorStatus.FAULTED in evses:
        states.add("Faulted")
    if station is ConnectorStatus.UNAVAILABLE or (evses and all(s is ConnectorStatus.UNAVAILABLE for s in evses)):
        states.add("Unavailable")
    if station not in (ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED) and all(s in _IDLE for s in evses):
        states.add("Idle")
    return frozenset(states)


def rotation(messages: Iterable[DisplayMessage], costs: Iterable[tuple[str, str]] = (), *, now: float,
             states: frozenset[str]) -> tuple[str | None, list[Item]]:
    """What takes turns on the display now: the winning priority and its items, in order.

    ``costs`` are (transaction id, text) of running costs; they belong to the
    normal cycle. An AlwaysFront message stands alone: the newest one. Nothing
    to show: (None, []).
    """
    live = sorted((m for m in messages if m.in_window(now) and (m.state is None or m.state in states)),
                  key=lambda m: m.seq)
    always = [m for m in live if m.priority == ALWAYS_FRONT]
    if always:
        return ALWAYS_FRONT, [(("message", always[-1].id), always[-1].content)]
    front = [(("message", m.id), m.content) for m in live if m.priority == IN_FRONT]
    if front:
        return IN_FRONT, front
    cycle = [(("message", m.id), m.content) for m in live if m.priority == NORMAL_CYCLE]
    cycle += [(("cost", ref), text) for ref, text in costs]
    return (NORMAL_CYCLE if cycle else None), cycle


def pick(cycle: list[Item], current: tuple | None, *, advance: bool = False) -> Item | None:
    """The item to show: the current one while it is still in the cycle (the next one when
    ``advance``), else the first; None for an empty cycle."""
    if not cycle:
        return None
    keys = [key for key, _ in cycle]
    if current not in keys:
        return cycle[0]
    index = keys.index(current)
    return cycle[(index + 1) % len(cycle)] if advance else cycle[index]


def next_change(messages: Iterable[DisplayMessage], now: float) -> float | None:
    """The next start or end time after ``now``: when the selection may change by itself."""
    times = [t for m in messages for t in (m.start, m.end) if t is not None and t > now]
    return min(times, default=None)


# ------------------------------------------------------------------ the service


class DisplayMessages:
    """The installed messages and running costs, and what the display (``hal.display``, or None) shows.

    ``station`` is the ChargingStation: its ``statuses`` and each EVSE's running
    ``transaction`` decide what is shown. Start it once the station has started
    (transactions a crash left open are ended by then).
    """

    def __init__(self, store, *, station, display, settings, clock, rotate_s: float = ROTATE_S):
        self._store = store
        self._station = station
        self.display = display
        self._settings = settings
        self._clock = clock
        self.rotate_s = rotate_s
        self._messages: dict[int, DisplayMessage] = _load(store)
        self._costs: dict[str, float] = {}  # transaction id -> total cost (not kept: it ends with a restart)
        self._cost_at: dict[str, float] = {}  # transaction id -> when the CSMS last said its cost
        self._local_costs: dict[str, str] = {}  # transaction id -> the station's own cost, as shown ("EUR 3.47")
        self._running_cost = None  # agent.core.charging.running_cost.RunningCost, when started with one
        self._current: tuple | None = None  # key of the item on the display
        self._shown: str | None = None  # the text we last put on the display
        self._priority: str | None = None  # priority of what is shown now
        self._own_timer: asyncio.TimerHandle | None = None  # the station's own text holds the display
        self._turn_timer: asyncio.TimerHandle | None = None
        self._change_timer: asyncio.TimerHandle | None = None
        self._scheduled = False
        self._started = False
        self._following = False

    def __repr__(self) -> str:
        return f"<DisplayMessages {len(self._messages)} installed, {len(self._costs)} costs, shown={self._shown!r}>"

    def __len__(self) -> int:
        return len(self._messages)

    # ------------------------------------------------------------ life cycle

    def start(self, *, running_cost: bool = False) -> None:
        """Drop what ended while the agent was down, follow the station, and show what applies now.

        Start it after the station: transactions a crash left open have ended by then. ``running_cost``:
        also show the station's own running cost of transactions priced by a tariff (OCPP 2.1 local cost).
        """
        self._started = True
        if running_cost and self._running_cost is None:
            from agent.core.charging.running_cost import RunningCost, money_text
            from agent.core.charging.tariffs import TariffBook

            self._running_cost = RunningCost(
                self._station, tariffs=TariffBook(self._store, evse_ids=self._station.evse_ids),
                show=lambda ref, total, currency: self.local_cost(ref, money_text(total, currency)))
        if not self._following:
            self._following = True
            self._station.add_listener(self.refresh)
            self._station.show_text = self.station_message  # its own texts never cover an AlwaysFront one
            self._settings.subscribe(self._setting_changed)
        self._evaluate()

    def close(self) -> None:
        """Stop every timer (the display keeps its last text)."""
        self._started = False
        if self._running_cost is not None:
            self._running_cost.close()
            self._running_cost = None
        for timer in (self._own_timer, self._turn_timer, self._change_timer):
            if timer is not None:
                timer.cancel()
        self._own_timer = self._turn_timer = self._change_timer = None

    # ------------------------------------------------------------ facts

    @property
    def available(self) -> bool:
        """A display is fitted."""
        return self.display is not None

    @property
    def formats(self) -> tuple[str, ...]:
        """The message formats the display renders (a driver may declare ``formats``)."""
        if self.display is None:
            return ()
        return tuple(getattr(self.display, "formats", TEXT_FORMATS))

    @property
    def limit(self) -> int:
        """How many messages may be installed: the maxLimit the device model states."""
        from agent.core.device_model.catalog import STATION_VARIABLES

        variable = next(v for v in STATION_VARIABLES if (v.component, v.name) == ("DisplayMessageCtrlr",
                                                                                  "DisplayMessages"))
        return int(variable.characteristics.max_limit)

    def variables(self) -> dict[str, Callable[[], Any]]:
        """The device model's suppliers for the DisplayMessageCtrlr facts only this service knows."""
        return {
            "DisplayMessageCtrlr.Available": lambda: self.available,
            "DisplayMessageCtrlr.DisplayMessages": lambda: len(self),
            "DisplayMessageCtrlr.SupportedFormats": lambda: self.formats,
        }

    def find(self, *, ids: Iterable[int] | None = None, priority: str | None = None,
             state: str | None = None) -> list[DisplayMessage]:
        """The installed messages that pass every filter given, by id."""
        ids = list(ids or ())
        return sorted((m for m in self._messages.values() if m.matches(ids=ids, priority=priority, state=state)),
                      key=lambda m: m.id)

    # ------------------------------------------------------------ commands

    def install(self, message: DisplayMessage) -> SetResult:
        """SetDisplayMessage: install (or replace, same id) a message and show it when it applies."""
        if self.display is None or not self._settings["display_messages_enabled"]:
            return SetResult.REJECTED
        if message.format not in self.formats:
            return SetResult.NOT_SUPPORTED_FORMAT
        if message.transaction_id is not None and message.transaction_id not in self._running():
            return SetResult.UNKNOWN_TRANSACTION
        now = self._clock.time()
        if message.end is not None and (message.end <= now or (message.start is not None
                                                               and message.end <= message.start)):
            return SetResult.REJECTED  # it could never be shown
        if message.id not in self._messages and len(self._messages) >= self.limit:
            return SetResult.REJECTED
        seq = max((m.seq for m in self._messages.values()), default=0) + 1
        self._messages[message.id] = replace(message, seq=seq)
        self._save()
        log.info("display message %d installed (%s%s)", message.id, message.priority,
                 f", {message.state}" if message.state else "")
        self._evaluate()
        return SetResult.ACCEPTED

    def clear(self, message_id: int) -> bool:
        """ClearDisplayMessage: True if it was installed."""
        if self._messages.pop(message_id, None) is None:
            return False
        self._save()
        log.info("display message %d cleared", message_id)
        self._evaluate()
        return True

    def cost_updated(self, transaction_id: str, total_cost: float) -> bool:
        """CostUpdated: show the running cost while the transaction runs; False if it does not run here."""
        if transaction_id not in self._running():
            log.info("cost %.2f for transaction %s not shown: it does not run here", total_cost, transaction_id)
            return False
        self._costs[transaction_id] = float(total_cost)
        self._cost_at[transaction_id] = self._clock.time()
        self._evaluate()
        return True

    def local_cost(self, transaction_id: str, text: str) -> None:
        """The station's own running cost of a running transaction (``text``: "EUR 3.47"), shown in its turn.

        The rule: the CSMS's running cost (CostUpdated, or totalCost in its answer to a TransactionEvent)
        is shown while it is fresh (younger than ``CSMS_COST_FRESH_S``), since the CSMS bills the session
        (central cost calculation, OCPP 2.0.1/2.1 I02) and may know what the station does not (a driver
        discount); once it is stale, or when the CSMS never sent one, the station's own cost (2.1 local
        cost calculation from the tariff) is shown, so the figure keeps up with the energy delivered, online
        or not. The display is touched only when the text changes.
        """
        if self._local_costs.get(transaction_id) == text:
            return
        self._local_costs[transaction_id] = text
        self.refresh()

    def final_cost(self, total_cost: float) -> bool:
        """The cost of a transaction that just ended (TransactionEvent Ended's answer), shown for a while."""
        if not self._settings["total_cost_enabled"]:
            return False
        return self.station_message(f"Total: {float(total_cost):.2f} {self._settings['currency']}",
                                    hold_s=PERSONAL_MESSAGE_S)

    def personal_message(self, text: str) -> bool:
        """A text the CSMS addressed to the driver (idTokenInfo.personalMessage), shown for a while."""
        return self.station_message(text, hold_s=PERSONAL_MESSAGE_S)

    def station_message(self, text: str, *, hold_s: float = STATION_MESSAGE_S) -> bool:
        """Show the station's own text ("Card refused") for ``hold_s``, then what applies again.

        Never over an AlwaysFront message, which no station text may override;
        returns whether the text is shown.
        """
        if self._priority == ALWAYS_FRONT:
            log.info("display: %r not shown over an AlwaysFront message", text)
            return False
        if self._own_timer is not None:
            self._own_timer.cancel()
        self._own_timer = asyncio.get_running_loop().call_later(hold_s, self._own_done)
        self._render(text)
        return True

    def refresh(self) -> None:
        """Evaluate again soon: the station's state or transactions changed (safe to call from anywhere)."""
        if self._scheduled or not self._started:
            return
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self._evaluate)

    # ------------------------------------------------------------ evaluation

    def _evaluate(self, *, advance: bool = False) -> None:
        """Work out what the display shows now and when to look again. Never raises."""
        self._scheduled = False
        if not self._started:
            return
        try:
            self._evaluate_now(advance)
        except Exception:
            log.exception("display: cannot work out what to show")

    def _evaluate_now(self, advance: bool) -> None:
        now = self._clock.time()
        self._prune(now)
        messages = self._messages.values() if self._settings["display_messages_enabled"] else ()
        priority, cycle = rotation(messages, self._cost_texts(), now=now,
                                   states=station_states(self._station.statuses))
        item = pick(cycle, self._current, advance=advance)
        self._current, self._priority = (item[0] if item else None), priority
        self._arm_turn(len(cycle) > 1)
        self._arm_change(next_change(self._messages.values(), now))
        if self._own_timer is not None:
            if priority != ALWAYS_FRONT:
                return  # the station's own text holds the display a little longer
            self._own_timer.cancel()
            self._own_timer = None
        self._render(item[1] if item else None)

    def _prune(self, now: float) -> None:
        """Forget messages whose end has passed or whose transaction ended, and costs of ended transactions."""
        running = self._running()
        gone = [m.id for m in self._messages.values()
                if (m.end is not None and m.end <= now) or (m.transaction_id is not None
                                                             and m.transaction_id not in running)]
        for message_id in gone:
            log.info("display message %d removed: it ended", message_id)
            del self._messages[message_id]
        if gone:
            self._save()
        for costs in (self._costs, self._cost_at, self._local_costs):
            for ref in [ref for ref in costs if ref not in running]:
                del costs[ref]

    def _cost_texts(self) -> list[tuple[str, str]]:
        if not (self._costs or self._local_costs) or not self._settings["total_cost_enabled"]:
            return []
        currency, now = self._settings["currency"], self._clock.time()
        texts = {ref: f"Cost: {text}" for ref, text in self._local_costs.items()}
        texts.update({ref: f"Cost: {total:.2f} {currency}" for ref, total in self._costs.items()
                      if ref not in texts or now - self._cost_at.get(ref, now) < CSMS_COST_FRESH_S})
        return list(texts.items())

    def _running(self) -> set[str]:
        """The ids of the transactions running now."""
        machines = getattr(self._station, "evses", {}).values()
        return {m.transaction.ref for m in machines if getattr(m, "transaction", None) is not None}

    def _arm_turn(self, needed: bool) -> None:
        """While several items share the display, the next one takes over after ``rotate_s``."""
        if needed and self._turn_timer is None:
            self._turn_timer = asyncio.get_running_loop().call_later(self.rotate_s, self._next_turn)
        elif not needed and self._turn_timer is not None:
            self._turn_timer.cancel()
            self._turn_timer = None

    def _next_turn(self) -> None:
        self._turn_timer = None
        self._evaluate(advance=True)

    def _arm_change(self, when: float | None) -> None:
        if self._change_timer is not None:
            self._change_timer.cancel()
            self._change_timer = None
        if when is not None:
            # A little after the boundary, so the message is past it when we look.
            delay = max(0.0, when - self._clock.time()) + 0.01
            self._change_timer = asyncio.get_running_loop().call_later(delay, self._changed_by_time)

    def _changed_by_time(self) -> None:
        self._change_timer = None
        self._evaluate()

    def _own_done(self) -> None:
        self._own_timer = None
        self._evaluate()

    def _setting_changed(self, name: str, value: Any) -> None:
        if name in _SETTINGS:
            self.refresh()

    def _render(self, text: str | None) -> None:
        """Put ``text`` on the display; a display error is logged, never raised into charging."""
        display = self.display
        if display is None:
            return
        try:
            current = display.text
            if text == current:
                self._shown = text
                return
            if text is None and current != self._shown:
                return  # someone else's text (the station's own): not ours to blank
            display.show(text)
            self._shown = text
        except Exception:
            log.exception("display: cannot show %r", text)

    def _save(self) -> None:
        self._store.put(_KEY, [asdict(m) for m in sorted(self._messages.values(), key=lambda m: m.id)])


def _load(store) -> dict[int, DisplayMessage]:
    """The installed messages; one that does not load (an older firmware's form) is dropped, not fatal."""
    messages = {}
    for item in store.get(_KEY, []):
        try:
            message = DisplayMessage(**item)
        except (TypeError, ValueError) as exc:
            log.warning("dropping a stored display message that does not load: %s", exc)
            continue
        messages[message.id] = message
    return messages
