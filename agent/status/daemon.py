"""The status socket wired into a running agent: which change hooks tell it, and its life cycle.

Every hook only calls :meth:`agent.status.server.StatusServer.changed` (a no-op while nobody watches)
or records a fact (the CSMS link went up or down). The hooks:

- the station's listener: after every EVSE status or transaction change;
- each meter's reading listener: after a poll that changed what the snapshot shows of the EVSE (power,
  energy, the meter going stale), or the offered current, which has no hook of its own (a charging
  profile, an external limit) and so shows at the next poll; an unchanged poll builds nothing;
- the display's listener: its text changed;
- the CSMS session's listener: the connection opened or ended;
- the agent's hardware-event loop: after each event is handled (faults, plug, external limit).

The socket is a window on the station, not part of charging: if it cannot be opened the agent logs
why and runs on without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.status import socket_path
from agent.status.server import StatusServer, StatusSocketError
from agent.status.snapshot import LinkState, SnapshotBuilder

log = logging.getLogger("agent.status")


class StatusService:
    """The status socket of one agent: a :class:`StatusServer` fed by the agent's change hooks."""

    def __init__(self, *, config, station, journal, hal, clock):
        self.link = LinkState(default_url=config.endpoint_url, clock=clock)
        self.snapshots = SnapshotBuilder(station_id=config.station.id, ocpp_version=config.csms.ocpp_version,
                                         station=station, journal=journal, hal=hal, clock=clock, link=self.link)
        self.server = StatusServer(socket_path(Path(config.station.data_dir)), build=self.snapshots.build)
        self.changed = self.server.changed  # the hook: cheap, returns at once without a watcher
        self._hal = hal
        self._polled: dict[int, tuple] = {}  # EVSE -> what its last poll showed, while somebody watches
        station.add_listener(self.changed)
        for hardware in hal.evses.values():
            hardware.meter.add_listener(self._meter_polled)
        if getattr(hal, "display", None) is not None:
            hal.display.add_listener(self.changed)

    async def start(self) -> None:
        """Open ``<data_dir>/agent.sock``; on failure say why and go on without it."""
        try:
            await self.server.start()
        except StatusSocketError as exc:
            log.error("no status socket (ocpp-agent status and web will not see this agent): %s", exc)

    def _meter_polled(self, evse_id: int, reading) -> None:
        if not self.server.watchers:
            self._polled.clear()  # a new watcher starts from its own first snapshot
            return
        shown = (None if reading is None else (reading.power_W, reading.energy_import_Wh),
                 self._hal.evse(evse_id).pilot.current_limit_A)
        if self._polled.get(evse_id) != shown:
            self._polled[evse_id] = shown
            self.changed()

    def follow(self, session) -> None:
        """Follow the CSMS session's connection (``agent.link.supervisor.CsmsSession``)."""
        session.add_listener(self._link_changed)

    def _link_changed(self, up: bool, url: str) -> None:
        self.link.changed(up, url)
        self.changed()

    async def close(self) -> None:
        """Drop the clients and remove the socket file."""
        await self.server.close()
