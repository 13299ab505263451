"""Variable monitoring over the device model (OCPP 2.0.1 block N), version-neutral (no ``ocpp`` import).

A monitor watches one variable of the device model:

* UpperThreshold / LowerThreshold trips when the value goes above / below the
  monitor's value, and clears when it comes back (both reported, trigger Alerting);
* Delta reports a numeric value that moved more than the monitor's value since
  it was last reported, and any change of another value (trigger Delta);
* Periodic reports the value every ``value`` seconds, PeriodicClockAligned on
  the multiples of ``value`` seconds after midnight UTC (trigger Periodic).

Nothing polls. Thresholds and deltas are evaluated by :meth:`Monitoring.check`,
which the composition root calls whenever a watched value can have changed:
after each station status or transaction change (AvailabilityState, Problem)
and after every poll of an EVSE's meter (Power, Voltage: ``check(evse_id=)``,
that EVSE's monitors only), so a threshold crossed on a live value is reported
within one poll interval, whether a transaction samples the meter or not.
Periodic monitors run on loop timers.

A trip the CSMS holds is cleared only where the CSMS can hear it. Once a
threshold monitor's trip was handed to a connected CSMS (or queued for the
next connection), the CSMS holds that state until it hears the monitor
cleared; a cleared event lost offline would leave it holding a problem that
is gone. So while no CSMS is attached such a monitor keeps its tripped state
even if the value came back, and the first evaluation at the next connection
(``attach``) clears it and reports it, whatever its severity and
OfflineQueuingSeverity, and across restarts (the tripped and told sets
persist). The cleared event then carries the time of that evaluation. A trip
the CSMS never heard of (above the active level, or dropped offline) clears
whenever its value comes back, and its clearing follows the same rules as
any event.

Preconfigured monitors come with the firmware (:func:`preconfigured_monitors`)
and SetMonitoringBase chooses which are active; custom monitors come from the
CSMS. The monitors, the active base and level, which thresholds are tripped and
which trips the CSMS was told of persist in the state store; a delta's reference value does not (it restarts
from the value at start-up).

What a monitor is (types, requests, events, the preconfigured ones) lives in
``agent.core.device_model.monitors``; its names are re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable

from agent.core.charging.metering import next_boundary
from agent.core.device_model.catalog import Entry
from agent.core.device_model.event_streams import EventStreams
from agent.core.device_model.monitors import (
    CLOCK_RECHECK_S, CRITERIA, DAY_S, DEFAULT_BASE, DEFAULT_LEVEL, FIRST_CUSTOM_ID, MIN_PERIOD_S, NUMERIC,
    OFFLINE_QUEUE_MAX, PERIODIC_TYPES, STATE_KEY, SUPPLY_TOLERANCE, THRESHOLDS, ClearMonitorStatus, Monitor,
    MonitorEvent, MonitoringBase, MonitorKind, MonitorRequest, MonitorType, Preset, SetMonitorResult,
    SetMonitorStatus, as_number, monitor_problem, monitoring_variables, preconfigured_monitors, read_state,
)
from agent.core.device_model.report import select_custom
from agent.errors import StoreError

__all__ = [
    "CLOCK_RECHECK_S", "CRITERIA", "DAY_S", "DEFAULT_BASE", "DEFAULT_LEVEL", "FIRST_CUSTOM_ID", "MIN_PERIOD_S",
    "NUMERIC", "OFFLINE_QUEUE_MAX", "PERIODIC_TYPES", "STATE_KEY", "SUPPLY_TOLERANCE", "THRESHOLDS",
    "ClearMonitorStatus", "Monitor", "MonitorEvent", "Monitoring", "MonitoringBase", "MonitorKind",
    "MonitorRequest", "MonitorType", "Preset", "SetMonitorResult", "SetMonitorStatus", "monitoring_variables",
    "preconfigured_monitors", "read_state",
]

log = logging.getLogger(__name__)

_Sink = Callable[[list[MonitorEvent]], None]


class Monitoring:
    """The station's variable monitors: set and cleared by the CSMS, evaluated on change, reported as events.

    ``device_model`` resolves and reads variables; ``settings`` gives
    ``monitoring_enabled`` and ``offline_queuing_severity``; ``transaction_of(evse_id)``
    names the running transaction of an EVSE (for transaction monitors and the
    events' transactionId). Events go to the attached sink (the connected
    adapter); while none is attached, those of a severity up to
    OfflineQueuingSeverity are kept (at most OFFLINE_QUEUE_MAX) and the rest
    dropped, and trips the CSMS holds are not cleared (module docstring). Only monitors with a severity number up to the active level report.
    Call ``start()`` on the event loop (periodic timers) and ``close()`` at shutdown.
    """

    def __init__(self, store, *, device_model, settings, clock, presets: Iterable[Preset] = (),
                 transaction_of: Callable[[int], str | None] | None = None) -> None:
        self._store = store
        self._model = device_model
        self._settings = settings
        self._clock = clock
        self._transaction_of = transaction_of
        self._entries = {self._entry_key(e.component.name, e.component.evse_id, e.component.connector_id,
                                         e.name, e.instance): e for e in device_model.entries}
        self._components = {key[:3] for key in self._entries}
        self._evse_ids = sorted({e.component.evse_id for e in device_model.entries if e.component.evse_id})
        self._presets = {p.monitor.id: p for p in presets if self._entry(p.monitor) is not None}
        state = read_state(store)
        self.base = MonitoringBase(state["base"])
        self.level = int(state["level"])
        self._next_id = int(state["next_id"])
        # A monitor whose variable this firmware or configuration no longer has is dropped (N04).
        self._custom = {m.id: m for m in map(Monitor.from_dict, state["custom"]) if self._entry(m) is not None}
        self._removed = set(state["removed"])  # preconfigured monitors cleared by the CSMS
        self._tripped = set(state["tripped"]) & set(self.active)
        self._told = set(state["reported"]) & self._tripped  # trips the CSMS holds: it heard of them
        self._references: dict[int, str] = {}  # a delta monitor's value when it last reported
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._sink: _Sink | None = None
        self._queue: deque[MonitorEvent] = deque(maxlen=OFFLINE_QUEUE_MAX)
        self._started = False
        #: 2.1 periodic event streams: a periodic monitor with an open one reports through it.
        self.streams = EventStreams(store, clock=clock)

    def __repr__(self) -> str:
        return (f"<Monitoring {len(self.active)} monitors base={self.base.value} level={self.level}"
                f" tripped={sorted(self._tripped)}>")

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Arm the periodic monitors and evaluate the others once (on the event loop)."""
        self._started = True
        for monitor in self.active.values():
            self._arm(monitor)
        self.check()

    def close(self) -> None:
        """Stop every timer and forget the sink."""
        self._started = False
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._sink = None
        self.streams.detach()

    def attach(self, sink: _Sink) -> None:
        """Send events to ``sink`` from now on, starting with those queued while nobody listened; then
        evaluate, so that a trip the CSMS holds whose value came back offline is cleared now."""
        self._sink = sink
        if self._queue:
            queued = list(self._queue)
            self._queue.clear()
            self._deliver(queued)
        self.check()

    def detach(self, sink: _Sink) -> None:
        """Stop sending to ``sink`` if it is still the one attached (its connection ended)."""
        if self._sink == sink:
            self._sink = None

    # ------------------------------------------------------------ the monitors

    @property
    def active(self) -> dict[int, Monitor]:
        """Every active monitor by id: the preconfigured ones of the base, then the custom ones."""
        monitors = {}
        if self.base is not MonitoringBase.HARD_WIRED_ONLY:
            monitors = {i: p.monitor for i, p in self._presets.items() if i not in self._removed
                        and (self.base is MonitoringBase.ALL or p.factory_default)}
        monitors.update(self._custom)
        return dict(sorted(monitors.items()))

    def set_monitor(self, request: MonitorRequest) -> SetMonitorResult:
        """Add a monitor, or replace the one ``request.id`` names (N04); Accepted with its id, or why not."""
        entry = self._find(request)
        if isinstance(entry, SetMonitorStatus):
            return SetMonitorResult(entry)
        try:
            kind = MonitorType(request.type)
        except ValueError:
            return SetMonitorResult(SetMonitorStatus.UNSUPPORTED_MONITOR_TYPE, reason=f"unknown type {request.type}")
        if not self._watched(entry):
            return SetMonitorResult(SetMonitorStatus.UNSUPPORTED_MONITOR_TYPE,
                                    reason=f"{entry.key} does not support monitoring")
        problem = monitor_problem(entry, kind, float(request.value), request.severity)
        if problem is not None:
            return SetMonitorResult(SetMonitorStatus.REJECTED, reason=problem)
        monitor = Monitor(request.id if request.id is not None else self._next_id, entry.component, entry.name,
                          entry.instance, kind, float(request.value), int(request.severity),
                          bool(request.transaction))
        refusal = self._refusal(monitor, replacing=request.id is not None)
        if refusal is not None:
            return refusal
        previous, next_id = self._custom.get(monitor.id), self._next_id
        if request.id is None:
            self._next_id += 1
        self._custom[monitor.id] = monitor  # a replaced preconfigured monitor becomes custom (N04.FR.15)
        try:
            self._persist()
        except StoreError as exc:
            log.warning("monitor %s not set: %s", monitor.id, exc)
            self._next_id = next_id
            if previous is None:
                del self._custom[monitor.id]
            else:
                self._custom[monitor.id] = previous
            return SetMonitorResult(SetMonitorStatus.REJECTED, reason="the monitor could not be stored")
        self._references.pop(monitor.id, None)
        self._arm(monitor)
        self.check()  # a new threshold may already be crossed, a changed one cleared (N07.FR.11)
        return SetMonitorResult(SetMonitorStatus.ACCEPTED, monitor.id)

    def _refusal(self, monitor: Monitor, *, replacing: bool) -> SetMonitorResult | None:
        active = self.active
        if replacing:
            current = active.get(monitor.id)
            if current is None:
                return SetMonitorResult(SetMonitorStatus.REJECTED, reason=f"no monitor {monitor.id}")  # N04.FR.13
            if current.key != monitor.key:
                return SetMonitorResult(SetMonitorStatus.REJECTED, reason="a monitor cannot move to another variable")
        for other in active.values():
            if (other.id != monitor.id and other.key == monitor.key and other.type is monitor.type
                    and other.severity == monitor.severity):  # N04.FR.10
                return SetMonitorResult(SetMonitorStatus.DUPLICATE, reason=f"same as monitor {other.id}")
        return None

    def clear_monitor(self, monitor_id: int) -> ClearMonitorStatus:
        """Remove one monitor (N06): NotFound if no such monitor is active; Rejected if the store fails."""
        if monitor_id not in self.active:
            return ClearMonitorStatus.NOT_FOUND
        custom, removed, tripped, told = dict(self._custom), set(self._removed), set(self._tripped), set(self._told)
        self._custom.pop(monitor_id, None)
        if monitor_id in self._presets:
            self._removed.add(monitor_id)
        self._tripped.discard(monitor_id)  # no cleared event for a removed monitor (N07.FR.12)
        self._told.discard(monitor_id)
        try:
            self._persist()
        except StoreError as exc:
            log.warning("monitor %s not cleared: %s", monitor_id, exc)
            self._custom, self._removed, self._tripped, self._told = custom, removed, tripped, told
            return ClearMonitorStatus.REJECTED
        self._references.pop(monitor_id, None)
        self._disarm(monitor_id)
        self.streams.remove(monitor_id)
        return ClearMonitorStatus.ACCEPTED

    def set_base(self, base: str) -> None:
        """SetMonitoringBase (N03): All keeps the custom monitors and brings back every preconfigured one;
        FactoryDefault and HardWiredOnly drop the custom monitors. ValueError for an unknown base."""
        self.base = MonitoringBase(base)
        self._removed.clear()
        if self.base is not MonitoringBase.ALL:
            self._custom.clear()
        active = self.active
        self._tripped &= set(active)
        self._told &= self._tripped
        self._references = {i: v for i, v in self._references.items() if i in active}
        self._persist()
        for monitor_id in list(self._timers):
            self._disarm(monitor_id)
        for monitor in active.values():
            self._arm(monitor)
        self.streams.retain(active)  # a dropped monitor's stream is closed
        self.check()

    def set_level(self, severity: int) -> bool:
        """SetMonitoringLevel (N05): report only monitors of this severity number or lower; False outside
        0-9 (or when the store fails)."""
        if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 9:
            return False
        level, self.level = self.level, severity
        try:
            self._persist()
        except StoreError as exc:
            log.warning("monitoring level not set: %s", exc)
            self.level = level
            return False
        return True

    def report(self, *, criteria: Iterable[str] | None = None,
               component_variables: list[dict] | None = None) -> list[tuple[Entry, list[Monitor]]]:
        """GetMonitoringReport's selection (N02): (variable, its monitors) in report order.

        ``criteria`` are MonitoringCriterionEnumType values (ValueError for
        another); ``component_variables`` ComponentVariableType dicts in
        snake_case, selecting as GetReport does.
        """
        chosen = list(self.active.values())
        if criteria:
            unknown = set(criteria) - set(CRITERIA)
            if unknown:
                raise ValueError(f"unknown monitoring criteria {sorted(unknown)}")
            types = {kind for criterion in criteria for kind in CRITERIA[criterion]}
            chosen = [m for m in chosen if m.type in types]
        entries = list(self._model.entries)
        if component_variables is not None:
            entries = select_custom(entries, lambda entry: None, criteria=None,
                                    component_variables=component_variables)
        groups = []
        for entry in entries:
            monitors = [m for m in chosen if m.key == entry.key]
            if monitors:
                groups.append((entry, monitors))
        return groups

    # ------------------------------------------------------------ evaluation

    def check(self, *, evse_id: int | None = None) -> None:
        """Evaluate every threshold and delta monitor against the variable's value now; report what fired.

        ``evse_id``: only the monitors of that EVSE's components (a poll of its meter changed nothing else).
        """
        if not self._settings["monitoring_enabled"]:
            return
        tripped_before, told_before = set(self._tripped), set(self._told)
        events = []
        for monitor in self.active.values():
            if monitor.type in PERIODIC_TYPES or not self._in_scope(monitor):
                continue
            if evse_id is not None and monitor.component.evse_id != evse_id:
                continue
            if self._sink is None and monitor.id in self._told:
                continue  # the CSMS holds this trip: it is cleared when a CSMS can hear it (module docstring)
            value = self._value(monitor)
            if value is None:
                continue  # unknown now (e.g. no recent meter reading): nothing to compare
            judge = self._threshold if monitor.type in THRESHOLDS else self._delta
            event = judge(monitor, value)
            if event is not None:
                events.append(event)
        self._emit(events)
        if self._tripped != tripped_before or self._told != told_before:
            self._persist_quietly()

    def _threshold(self, monitor: Monitor, value: str) -> MonitorEvent | None:
        number = as_number(value)
        if number is None:
            return None
        # Beyond, not at, the threshold (N07.FR.16/17).
        crossed = number > monitor.value if monitor.type is MonitorType.UPPER_THRESHOLD else number < monitor.value
        if crossed == (monitor.id in self._tripped):
            return None
        (self._tripped.add if crossed else self._tripped.discard)(monitor.id)
        return self._event(monitor, "Alerting", value, cleared=not crossed)

    def _delta(self, monitor: Monitor, value: str) -> MonitorEvent | None:
        reference = self._references.get(monitor.id)
        if reference is None:
            self._references[monitor.id] = value  # the value when the monitor was set (or the agent started)
            return None
        old, new = as_number(reference), as_number(value)
        if old is not None and new is not None and self._numeric(monitor):
            changed = abs(new - old) > monitor.value
        else:
            changed = value != reference  # any change of a non-numeric value (N07.FR.19)
        if not changed:
            return None
        self._references[monitor.id] = value
        return self._event(monitor, "Delta", value)

    def _event(self, monitor: Monitor, trigger: str, value: str, *, cleared: bool = False) -> MonitorEvent:
        return MonitorEvent(monitor, trigger, value, self._clock.time(), cleared=cleared,
                            transaction_id=self._transaction(monitor))

    def _emit(self, events: list[MonitorEvent]) -> None:
        reported = [e for e in events if e.monitor.severity <= self.level]  # N05.FR.03
        if self._sink is None:
            # Offline: queue what is severe enough (N07.FR.04, N08.FR.03), drop the rest.
            queued = self._settings["offline_queuing_severity"]
            reported = [e for e in reported if e.monitor.severity <= queued]
            self._queue.extend(reported)
        elif reported:
            self._deliver(reported)
        self._note_told(events, reported)

    def _note_told(self, events: list[MonitorEvent], reported: list[MonitorEvent]) -> None:
        """Trips the CSMS holds: those whose event it got (or gets with the queue), until their clearing."""
        sent = {id(e) for e in reported}
        for event in events:
            if event.monitor.type not in THRESHOLDS:
                continue
            if event.cleared:
                self._told.discard(event.monitor.id)
            elif id(event) in sent:
                self._told.add(event.monitor.id)

    def _deliver(self, events: list[MonitorEvent]) -> None:
        try:
            self._sink(events)
        except Exception:  # a reporting bug must not disturb whoever told us a value changed
            log.exception("monitor events could not be handed over")

    # ------------------------------------------------------------ periodic monitors

    def _arm(self, monitor: Monitor) -> None:
        """(Re)start a periodic monitor's timer; no-op for other monitors or before ``start()``."""
        self._disarm(monitor.id)
        if not self._started or monitor.type not in PERIODIC_TYPES:
            return
        loop = asyncio.get_running_loop()
        if monitor.type is MonitorType.PERIODIC:
            self._timers[monitor.id] = loop.call_later(monitor.value, self._periodic_due, monitor.id, None)
            return
        due = next_boundary(self._clock.time(), monitor.value)
        self._arm_until(monitor.id, due)

    def _arm_until(self, monitor_id: int, due: float) -> None:
        # Sleep in slices: the corrected clock may jump when the CSMS sets it.
        delay = min(max(0.0, due - self._clock.time()), CLOCK_RECHECK_S)
        loop = asyncio.get_running_loop()
        self._timers[monitor_id] = loop.call_later(delay, self._periodic_due, monitor_id, due)

    def _disarm(self, monitor_id: int) -> None:
        timer = self._timers.pop(monitor_id, None)
        if timer is not None:
            timer.cancel()

    def _periodic_due(self, monitor_id: int, due: float | None) -> None:
        self._timers.pop(monitor_id, None)
        monitor = self.active.get(monitor_id)
        if monitor is None or not self._started:
            return
        now = self._clock.time()
        if due is not None and now < due:
            if due - now > monitor.value:  # the clock was set back: realign
                due = next_boundary(now, monitor.value)
            self._arm_until(monitor_id, due)
            return
        try:
            if self._settings["monitoring_enabled"] and self._in_scope(monitor):
                value = self._value(monitor)
                # A monitor with an open stream reports through it, not by events.
                if value is not None and not self.streams.take(monitor_id, self._clock.time(), value):
                    self._emit([self._event(monitor, "Periodic", value)])
        finally:
            if monitor.type is MonitorType.PERIODIC:
                self._arm(monitor)
            else:
                self._arm_until(monitor_id, next_boundary(max(due, now), monitor.value))

    # ------------------------------------------------------------ variables

    @staticmethod
    def _entry_key(component: str, evse_id, connector_id, variable: str, instance: str | None) -> tuple:
        # Names compare case-insensitively in 2.0.1.
        return (str(component).lower(), evse_id, connector_id, str(variable).lower(), (instance or "").lower())

    def _find(self, request: MonitorRequest) -> Entry | SetMonitorStatus:
        where = (str(request.component).lower(), request.evse_id, request.connector_id)
        if request.component_instance is not None or where not in self._components:
            return SetMonitorStatus.UNKNOWN_COMPONENT  # no component of this station has instances
        entry = self._entries.get(self._entry_key(request.component, request.evse_id, request.connector_id,
                                                  request.variable, request.variable_instance))
        return entry if entry is not None else SetMonitorStatus.UNKNOWN_VARIABLE

    def _entry(self, monitor: Monitor) -> Entry | None:
        c = monitor.component
        return self._entries.get(self._entry_key(c.name, c.evse_id, c.connector_id, monitor.variable, monitor.instance))

    @staticmethod
    def _watched(entry: Entry) -> bool:
        # The catalog marks the live values the station tells monitoring about (supportsMonitoring).
        return entry.characteristics.supports_monitoring

    def _numeric(self, monitor: Monitor) -> bool:
        return self._entry(monitor).characteristics.data_type in NUMERIC

    def _value(self, monitor: Monitor) -> str | None:
        c = monitor.component
        return self._model.get(c.name, monitor.variable, evse_id=c.evse_id, connector_id=c.connector_id,
                               variable_instance=monitor.instance).value

    def _transaction(self, monitor: Monitor) -> str | None:
        """The transaction running where the monitored variable is (any EVSE, for a station-wide one)."""
        if self._transaction_of is None:
            return None
        evse_ids = [monitor.component.evse_id] if monitor.component.evse_id is not None else self._evse_ids
        return next((ref for ref in map(self._transaction_of, evse_ids) if ref), None)

    def _in_scope(self, monitor: Monitor) -> bool:
        return not monitor.transaction or self._transaction(monitor) is not None

    # ------------------------------------------------------------ persistence

    def _persist(self) -> None:
        self._store.put(STATE_KEY, {
            "base": self.base.value, "level": self.level, "next_id": self._next_id,
            "custom": [m.to_dict() for m in self._custom.values()], "removed": sorted(self._removed),
            "tripped": sorted(self._tripped), "reported": sorted(self._told)})

    def _persist_quietly(self) -> None:
        try:
            self._persist()
        except StoreError as exc:
            # The event still goes out; after a restart the trip may be reported once more.
            log.warning("monitor state not saved: %s", exc)
