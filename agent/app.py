"""The composition root: config -> state store -> HAL -> (EVSE logic) -> protocol.

Shutdown runs in reverse, and outputs go to the safe state before anything else.
Signal handlers only set flags; the main coroutine acts on them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shlex
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

from agent.runtime.clock import Clock
from agent.config import AgentConfig, load_config
from agent.errors import STATION_ERRORS, ConfigError
from agent.runtime.liveness import TICK_S, Liveness
from agent.runtime.lockfile import DataDirLock
from agent.runtime.logging_setup import configure_logging
from agent.runtime.sdnotify import Notifier

log = logging.getLogger("agent")


class Agent:
    """One running agent: owns every long-lived object and their order of start and stop."""

    def __init__(self, config: AgentConfig, *, config_path: str | None = None, notifier: Notifier | None = None):
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.clock = Clock()
        self.liveness = Liveness()
        self.store = self.settings = self.message_log = self.hal = None
        self.station = self.sampler = self.core = None
        self.reset_requested: bool | None = None  # None, False (restart) or True (reboot the board)
        self.session = None
        self.mock_control = None
        self.status = None  # agent.status.daemon.StatusService: <data_dir>/agent.sock
        self.hal_events: asyncio.Queue = asyncio.Queue()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._lock: DataDirLock | None = None

    # ------------------------------------------------------------ start

    async def start(self) -> None:
        """Open state, bring the HAL up (READY=1), then start talking to the CSMS."""
        data_dir = Path(self.config.station.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._lock = DataDirLock(data_dir, purpose="ocpp-agent run")
        self._lock.acquire()
        self._open_state(data_dir)
        await self._start_hal(data_dir)
        await self._start_core()
        await self._start_status()
        self.notifier.ready(f"HAL up; connecting to {self.config.endpoint_url}")
        self._start_protocol()
        self.status.follow(self.session)
        self._tasks.append(asyncio.create_task(self._dispatch_hal_events(), name="hal-events"))
        self._tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))

    def _open_state(self, data_dir: Path) -> None:
        from agent.runtime.message_log import MessageLog
        from agent.runtime.settings import Settings
        from agent.runtime.store import StateStore

        self.store = StateStore(data_dir / "state.sqlite", stamp_mark=self.clock.unsynced_mark)
        self.clock.add_listener(self._clock_corrected)
        from agent.core.management.network import NetworkProfiles

        # Before the settings load: an edited csms.security_profile replaces the CSMS's earlier raise.
        NetworkProfiles.forget_stale_raise(self.store, self.config.csms.security_profile)
        profiles = supported_profiles(self.config.csms.ocpp_version)  # fixed by the code: compute once
        self.settings = Settings(self.store, initial=self.config.initial_settings, computed={
            "number_of_connectors": lambda: len(self.config.evse),
            "supported_feature_profiles": lambda: profiles,
        }, ocpp_version=self.config.csms.ocpp_version)
        if self.config.csms.password and self.settings["basic_auth_password"]:
            key = "AuthorizationKey" if self.config.csms.ocpp_version == "1.6" else "BasicAuthPassword"
            log.warning("csms.password in the config is overridden by the password the CSMS set (%s); "
                        "only the CSMS can change it again", key)
        max_bytes = int(self.config.logging.message_log_max_MiB * 1024 * 1024)
        self.message_log = MessageLog(data_dir / "messages.sqlite", max_bytes=max_bytes, health=self.store.health)

    async def _start_hal(self, data_dir: Path) -> None:
        from hal.registry import build_hal

        self.hal = await build_hal(self.config, emit=self.hal_events.put_nowait)
        await self.hal.start()
        if self.config.hal.backend == "mock":
            from hal.mock.control import MockControlServer

            self.mock_control = MockControlServer(self.hal, data_dir / "mock-hal.sock",
                                                  status_provider=self._status_for_mock)
            await self.mock_control.start()

    async def _start_status(self) -> None:
        """The status socket (every backend), told of changes by the station, meters, display and link."""
        from agent.status.daemon import StatusService

        self.status = StatusService(config=self.config, station=self.station, journal=self.core.journal,
                                    hal=self.hal, clock=self.clock)
        await self.status.start()

    async def _start_core(self) -> None:
        """The charging core: journal, authorization, EVSE machines, meter sampling."""
        from agent.app_device_model import build_device_model, wire_monitoring_and_customer_info
        from agent.core.charging.auth import AuthorizationCache, Authorizer
        from agent.core.management.configuration import ConfigurationService
        from agent.core.management.certificates import CertificateStore
        from agent.core.device_model.display_messages import DisplayMessages
        from agent.core.management.firmware import FirmwareJob
        from agent.core.charging.local_list import LocalAuthorizationList
        from agent.core.charging.metering import MeterSampler
        from agent.core.services import CoreServices
        from agent.core.charging.station import ChargingStation
        from agent.core.management.station_certificate import StationCertificate
        from agent.core.charging.transactions import TransactionJournal

        station_cfg = self.config.station
        journal = TransactionJournal(self.store)
        local_list = LocalAuthorizationList(self.store, settings=self.settings)
        authorizer = Authorizer(settings=self.settings, cache=AuthorizationCache(self.store, clock=self.clock),
                                clock=self.clock, free_vend=station_cfg.free_vend, local_list=local_list)
        self.station = ChargingStation(
            hal=self.hal, store=self.store, settings=self.settings, clock=self.clock, authorizer=authorizer,
            journal=journal, evse_max_current={e.id: e.max_current_A for e in self.config.evse},
            liveness=self.liveness, free_vend_id_token=station_cfg.free_vend_id_token if station_cfg.free_vend else None,
            evse_phases={e.id: e.phases for e in self.config.evse})
        self.sampler = MeterSampler(
            meters={i: hw.meter for i, hw in self.hal.evses.items()}, clock=self.clock, settings=self.settings,
            sink=self.station.meter_sample, transaction_of=self.station.transaction_ref,
            offered_A=lambda evse_id: self.hal.evse(evse_id).pilot.current_limit_A)
        self.station.sampler = self.sampler
        certificates = CertificateStore(Path(station_cfg.data_dir) / "certs")
        display_messages = DisplayMessages(self.store, station=self.station, display=self.hal.display,
                                           settings=self.settings, clock=self.clock)
        self.core = CoreServices(station=self.station, authorizer=authorizer, journal=journal,
                                 configuration=ConfigurationService(self.settings), store=self.store,
                                 request_reset=self.request_reset, display_messages=display_messages,
                                 # The device model is 2.0.1's and 2.1's view of the settings: a 1.6 agent never loads it.
                                 device_model=(build_device_model(self, display_messages)
                                               if self.config.csms.ocpp_version != "1.6" else None),
                                 local_list=local_list, data_dir=Path(station_cfg.data_dir),
                                 certificates=certificates, station_certificate=StationCertificate(
                                     Path(station_cfg.data_dir) / "station-certificate", station_id=station_cfg.id,
                                     settings=self.settings, store=self.store, certificates=certificates,
                                     clock=self.clock.time),
                                 config_path=self.config_path, station_id=station_cfg.id,
                                 firmware=FirmwareJob(self.store, Path(station_cfg.data_dir),
                                                      install_command=list(self.config.system.firmware_install_command)
                                                      or None,
                                                      busy=self.station.busy, clock=self.clock.time))
        self.core.network = self._network_profiles(certificates)
        wire_monitoring_and_customer_info(self, local_list)
        self._record_startup()
        self.settings.subscribe(self._security_setting_changed)
        await self.station.start()
        display_messages.start(running_cost=self.config.csms.ocpp_version == "2.1")  # after the station: see start()
        await self.sampler.start()
        if self.core.monitoring is not None:
            self.core.monitoring.start()

    def _network_profiles(self, certificates):
        """The connection profiles: the config file's [csms] as slot 0, and what the CSMS added."""
        from agent.core.management.certificates import CSMS_ROOT
        from agent.core.management.network import ConnectionProfile, NetworkProfiles
        from agent.core.management.security_events import RECONFIGURATION

        station_certificate = self.core.station_certificate
        return NetworkProfiles(
            self.store, self.settings, config_profile=ConnectionProfile.from_config(self.config.csms),
            can_trust_csms=lambda: bool(self.config.csms.ca_file or certificates.list([CSMS_ROOT])),
            has_client_certificate=lambda: bool(self.config.csms.client_cert_file
                                                or station_certificate.client_files()),
            has_password=lambda: bool(self.config.csms.password or self.settings["basic_auth_password"]),
            on_security_event=lambda tech_info: self._security_event(RECONFIGURATION, tech_info))

    def _security_event(self, kind: str, tech_info: str | None = None) -> None:
        """Record a security event (durable) and have it sent when the CSMS can hear it."""
        from agent.core.management.security_events import record_security_event

        record_security_event(self.store, kind, timestamp=self.clock.time(), tech_info=tech_info)
        if self.station is not None:
            self.station.outbox_changed()

    def _csms_trust(self, ca_file: str) -> str:
        """The CA file the CSMS's TLS certificate is checked against: the config's plus the installed roots."""
        from agent.core.management.certificates import CSMS_ROOT

        bundle = self.core.certificates.ca_bundle([CSMS_ROOT], extra=ca_file or None)
        return str(bundle) if bundle is not None else ca_file

    def _clock_corrected(self, correction) -> None:
        """First synchronisation: what was recorded on the board clock gets the CSMS's time, before it is sent."""
        from agent.core.charging import fault_reports, transactions
        from agent.core.management import security_events

        with self.store.transaction():  # all or nothing; on failure the clock retries at the next sync
            records = transactions.correct_stamps(self.store, correction)
            events = security_events.correct_stamps(self.store, correction)
            events += fault_reports.correct_stamps(self.store, correction)
        if records or events:
            log.info("clock error %+.1f s: corrected %d transaction records and %d security and fault events "
                     "recorded before", correction.error_s, records, events)

    def _record_startup(self) -> None:
        """Security event: a power-up, or a restart the agent did itself (reset, graceful stop)."""
        from agent.core.management.security_events import RESET_OR_REBOOT, STARTUP, record_security_event

        restarted = self.store.get("station:restart_reason") is not None
        record_security_event(self.store, RESET_OR_REBOOT if restarted else STARTUP, timestamp=self.clock.time())

    def _security_setting_changed(self, name: str, value) -> None:
        from agent.core.management.security_events import RECONFIGURATION

        if name == "security_profile" and self.session is not None:
            # 1.6 SecurityProfile: disconnect and come back with the new profile at once.
            log.info("security profile now %d: reconnecting", value)
            self.session.reconnect()
        if name == "basic_auth_password":
            self._security_event(RECONFIGURATION, "BasicAuthPassword changed")

    def _status_for_mock(self, evse_id: int) -> dict:
        """`sim state`: the status last reported, in the words of the OCPP version in use."""
        from agent.status.snapshot import evse_status

        if self.station is None:
            return {"status": None, "transaction_id": None}
        return evse_status(self.station, self.config.csms.ocpp_version, evse_id)

    def _start_protocol(self) -> None:
        from agent.protocol import adapter_class
        from agent.protocol.common.adapter import BootRecord, StationInfo
        from agent.link.supervisor import CsmsSession

        station = self.config.station
        info = StationInfo(station.vendor, station.model, station.serial_number, station.firmware_version)
        adapter_cls = adapter_class(self.config.csms.ocpp_version)
        ticker = self.liveness.register("protocol")
        factory = partial(
            adapter_cls, station.id, station=info, settings=self.settings, clock=self.clock,
            response_timeout_s=self.config.csms.response_timeout_s, ticker=ticker, core=self.core,
        )
        factory = _with_subprotocol(factory, adapter_cls.subprotocol)
        self.session = CsmsSession(
            self.config, adapter_factory=factory, settings=self.settings, boot=BootRecord(self.store),
            on_frame=self.message_log.append, ticker=ticker, station_certificate=self.core.station_certificate,
            network=self.core.network, trust=self._csms_trust, on_security_event=self._security_event,
        )
        self._tasks.append(asyncio.create_task(self.session.run(), name="csms-session"))

    # ------------------------------------------------------------ loops

    async def _dispatch_hal_events(self) -> None:
        """Hand every HAL event to the station, in order."""
        ticker = self.liveness.register("hal-events")
        while True:
            try:
                event = await asyncio.wait_for(self.hal_events.get(), timeout=TICK_S)
            except asyncio.TimeoutError:
                ticker.tick()
                continue
            ticker.tick()
            try:
                await self.station.handle_hal_event(event)
            except Exception:
                log.exception("hardware event %s could not be handled", event)
            self.status.changed()  # a fault, a plug: no-op while nobody watches

    async def _watchdog(self) -> None:
        """Pet systemd's watchdog only while every loop has ticked recently."""
        interval = self.notifier.watchdog_interval_s()
        if interval is None:
            return  # not under a systemd watchdog: nothing to pet
        stale_after = self.config.system.watchdog_stale_s
        while True:
            await asyncio.sleep(interval)
            stale = self.liveness.stale(stale_after)
            if stale:
                log.error("not petting the watchdog: %s stalled", ", ".join(stale))
                continue
            self.notifier.watchdog()

    # ------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Ask the main loop to shut down (signal-safe)."""
        self._stop.set()

    def request_reset(self, hard: bool) -> None:
        """A CSMS Reset: stop (outputs safe), then restart the process (soft) or reboot (hard)."""
        self.reset_requested = hard
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the main loop to re-read the config file (signal-safe)."""
        self._reload.set()

    async def wait(self) -> None:
        """Serve until a stop is requested, handling reloads on the way."""
        while not self._stop.is_set():
            stop = asyncio.create_task(self._stop.wait())
            reload = asyncio.create_task(self._reload.wait())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            reload.cancel()
            if self._reload.is_set():
                self._reload.clear()
                self.reload()

    def reload(self) -> None:
        """SIGHUP: apply a new config file where that is safe without a restart."""
        if not self.config_path:
            return
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config:\n  %s", "\n  ".join(map(str, exc.errors)))
            return
        configure_logging(new.logging.level, new.logging.levels)
        needs_restart = [name for name in ("station", "evse", "hal") if getattr(new, name) != getattr(self.config, name)]
        if needs_restart:
            log.warning("reload: changes to %s take effect after a restart", ", ".join(needs_restart))
        csms_changed = new.csms != self.config.csms
        self.config = _merge_live(self.config, new)
        if csms_changed and self.session is not None:
            log.info("reload: CSMS settings changed; reconnecting")
            self.session.reconfigure(self.config)
        log.info("configuration reloaded from %s", self.config_path)

    def dump_tasks(self) -> None:
        """SIGUSR1: write every task's stack to the log, for diagnosing a wedged agent."""
        out = io.StringIO()
        for task in asyncio.all_tasks():
            out.write(f"--- {task.get_name()}\n")
            task.print_stack(file=out)
        log.warning("task dump:\n%s", out.getvalue())

    # ------------------------------------------------------------ stop

    async def shutdown(self) -> None:
        """Safe outputs first, then close the CSMS connection, then release everything."""
        self.notifier.stopping()
        if self.hal is not None:
            await self.hal.safe_state()
        if self.station is not None:
            self.station.note_controlled_stop()
        if self.session is not None:
            await self.session.stop()
        if self.sampler is not None:
            await self.sampler.stop()
        if self.core is not None and self.core.firmware is not None:
            await self.core.firmware.close()
        if self.core is not None and self.core.logs is not None:
            await self.core.logs.close()
        if self.core is not None and self.core.display_messages is not None:
            self.core.display_messages.close()
        if self.core is not None and self.core.monitoring is not None:
            self.core.monitoring.close()
        if self.station is not None:
            await self.station.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mock_control is not None:
            await self.mock_control.close()
        if self.status is not None:
            await self.status.close()
        if self.hal is not None:
            await self.hal.close()
        for closable in (self.message_log, self.store):
            if closable is not None:
                closable.close()
        self.notifier.close()
        if self._lock is not None:
            self._lock.release()
        log.info("stopped; outputs are safe")


def supported_profiles(ocpp_version: str) -> tuple[str, ...]:
    """1.6 feature profiles whose every message the adapter supports (SupportedFeatureProfiles)."""
    if ocpp_version != "1.6":
        return ()
    from agent.commands.pics import support_table

    rows = support_table("1.6")
    names = {"Core": "Core", "Firmware Management": "FirmwareManagement",
             "Local Auth List Management": "LocalAuthListManagement", "Reservation": "Reservation",
             "Smart Charging": "SmartCharging", "Remote Trigger": "RemoteTrigger"}
    return tuple(code for profile, code in names.items()
                 if all(r["supported"] for r in rows if r["profile"] == profile))


def _merge_live(old: AgentConfig, new: AgentConfig) -> AgentConfig:
    """Keep the parts that need a restart from ``old``; take the rest from ``new``."""
    from dataclasses import replace

    return replace(new, station=old.station, evse=old.evse, hal=old.hal)


def _with_subprotocol(factory, subprotocol: str):
    """Attach the adapter's subprotocol to a factory, so the session can ask for it."""
    factory.subprotocol = subprotocol
    return factory


async def _main(config: AgentConfig, config_path: str | None) -> tuple[int, bool | None]:
    agent = Agent(config, config_path=config_path)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, agent.request_stop)
    loop.add_signal_handler(signal.SIGINT, agent.request_stop)
    loop.add_signal_handler(signal.SIGHUP, agent.request_reload)
    loop.add_signal_handler(signal.SIGUSR1, agent.dump_tasks)
    try:
        await agent.start()
        await agent.wait()
    except STATION_ERRORS as exc:
        log.error("start-up failed: %s", exc)
        await agent.shutdown()
        return 1, None
    except Exception:
        log.exception("fatal error; making outputs safe")
        await agent.shutdown()
        return 1, None
    await agent.shutdown()
    return 0, agent.reset_requested


def run_agent(config: AgentConfig, *, config_path: str | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; 0 after a clean stop, 1 on a start-up error."""
    configure_logging(config.logging.level, config.logging.levels)
    log.info("ocpp-agent starting: station %s, OCPP %s, pid %d", config.station.id, config.csms.ocpp_version, os.getpid())
    code, reset = asyncio.run(_main(config, config_path))
    if reset is None:
        return code
    _restart(config, config_path=config_path, reboot=reset)
    return code


def _restart(config: AgentConfig, *, config_path: str | None, reboot: bool) -> None:
    """After a CSMS Reset (outputs already safe): reboot the board (Hard) or restart this process (Soft).

    A failed reboot command falls back to restarting the process, so the
    station comes back either way.
    """
    if reboot:
        command = shlex.split(config.system.reboot_command)
        log.warning("Hard reset: running %s", config.system.reboot_command)
        try:
            if subprocess.run(command, timeout=60).returncode == 0:
                return
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("reboot command failed: %s", exc)
        log.error("reboot command did not succeed; restarting the agent instead")
    log.warning("Soft reset: restarting the agent")
    argv = [sys.executable, "-m", "agent", "run"] + (["--config", config_path] if config_path else [])
    os.execv(sys.executable, argv)
