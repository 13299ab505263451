"""`ocpp-agent demo`: an embedded CSMS and an agent on the mock HAL, on loopback.

Everything runs in this process: the CSMS simulator listens on a random
loopback port, the agent connects to it exactly as it would to a real CSMS,
and the demo plays one charging session on EVSE 1 by driving the mock HAL the
way a driver and an EV would. Nothing is staged: every status, reading and
OCPP message shown is what the agent really did (see ``agent.commands.demo_view``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from agent.commands.demo_dashboard import start_dashboard, stop_dashboard
from agent.commands.demo_view import cents, make_view
from agent.runtime.logging_setup import configure_logging

STATION_ID = "DEMO01"
CARD = "04A1B2C3"
EV_POWER_W = 7400.0
HEARTBEAT_S = 10  # slow enough not to crowd the message list, fast enough to show up
SAMPLE_S = 2  # meter values every 2 s, so a ~15 s demo shows several
PAUSE_S = 1.0  # between steps, so a person can follow the panel
LIMIT_A = 10.0  # the smart-charging limit the CSMS sets during the session
STEP_TIMEOUT_S = 10.0  # generous: the slowest step waits for two meter values, 4 s
CONFIG_NAME = "demo.toml"
#: The default tariff the 2.1 CSMS sets before the session, prices before 20 % VAT: 0.30 EUR/kWh and, so that a
#: 15 s demo shows its cost grow by more than a cent, 0.12 EUR per minute charging, to the driver.
_VAT = [{"type": "VAT", "tax": 20}]
TARIFF = {"tariff_id": "DEMO-0.30", "currency": "EUR",
          "energy": {"prices": [{"price_kwh": 0.25}], "tax_rates": _VAT},
          "charging_time": {"prices": [{"price_minute": 0.10}], "tax_rates": _VAT}}


class DemoFailed(Exception):
    """A step did not reach its expected state; the message says which and why."""


def demo_config_text(*, url: str, data_dir: str, ocpp_version: str) -> str:
    """The demo agent's config file: two EVSEs on the mock HAL, fast meter values.

    It is written to the data dir and loaded from there, so the agent runs on
    exactly the file that `ocpp-agent sim --config` reads to find the socket.
    """
    q = json.dumps  # a JSON string is a valid TOML basic string
    return f"""\
# Written by `ocpp-agent demo`; removed when the demo ends.
[station]
id = {q(STATION_ID)}
data_dir = {q(data_dir)}
vendor = "ocpp-agent"
model = "demo"

[csms]
url = {q(url)}
ocpp_version = {q(ocpp_version)}

[[evse]]
id = 1
max_current_A = 32.0
phases = 3

[[evse]]
id = 2
max_current_A = 16.0
phases = 1

[hal]
backend = "mock"

[logging]
level = "warning"

[ocpp16.configuration]
MeterValueSampleInterval = {SAMPLE_S}
MeterValuesSampledData = "Energy.Active.Import.Register,Power.Active.Import"

[ocpp201.variables]
"SampledDataCtrlr.TxUpdatedInterval" = {SAMPLE_S}
"SampledDataCtrlr.TxUpdatedMeasurands" = "Energy.Active.Import.Register,Power.Active.Import"
"""


def write_demo_config(data_dir: Path, *, url: str, ocpp_version: str) -> Path:
    """Write the demo's config file into ``data_dir`` and return its path."""
    path = data_dir / CONFIG_NAME
    path.write_text(demo_config_text(url=url, data_dir=str(data_dir), ocpp_version=ocpp_version))
    return path


class Terms:
    """What differs between the versions, in each version's own words."""

    def __init__(self, ocpp_version: str):
        self.v16 = ocpp_version == "1.6"
        self.v21 = ocpp_version == "2.1"
        self.plugged = "Preparing" if self.v16 else "Occupied"
        self.charging = "Charging" if self.v16 else "Occupied"

    def events(self, csms, event_type: str) -> list:
        """2.0.1 TransactionEvents of one type (Started, Updated, Ended)."""
        return [r for r in csms.calls("TransactionEvent") if r.payload.get("eventType") == event_type]

    def started(self, csms) -> bool:
        """The CSMS has been told a transaction started."""
        return bool(csms.calls("StartTransaction") if self.v16 else self.events(csms, "Started"))

    def ended(self, csms) -> bool:
        """The CSMS has been told the transaction ended."""
        return bool(csms.calls("StopTransaction") if self.v16 else self.events(csms, "Ended"))

    def meter_reports(self, csms) -> int:
        """Periodic meter values received (1.6 MeterValues; 2.0.1 TransactionEvent Updated)."""
        if self.v16:
            return len(csms.calls("MeterValues"))
        return sum(1 for r in self.events(csms, "Updated") if r.payload.get("triggerReason") == "MeterValuePeriodic")

    def limit_profile(self, evse_id: int, amps: float):
        """The CSMS's SetChargingProfile: a TxDefaultProfile holding ``amps`` from now on."""
        start = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        periods = [{"start_period": 0, "limit": amps}]
        if self.v16:
            from ocpp.v16 import call

            profile = {"charging_profile_id": 1, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
                       "charging_profile_kind": "Absolute",
                       "charging_schedule": {"charging_rate_unit": "A", "start_schedule": start,
                                             "charging_schedule_period": periods}}
            return call.SetChargingProfile(connector_id=evse_id, cs_charging_profiles=profile)
        from ocpp.v201 import call

        profile = {"id": 1, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
                   "charging_profile_kind": "Absolute",
                   "charging_schedule": [{"id": 1, "charging_rate_unit": "A", "start_schedule": start,
                                          "charging_schedule_period": periods}]}
        return call.SetChargingProfile(evse_id=evse_id, charging_profile=profile)

    def change_availability(self, evse_id: int, operative: bool):
        """The CSMS's ChangeAvailability request for one EVSE."""
        word = "Operative" if operative else "Inoperative"
        if self.v16:
            from ocpp.v16 import call

            return call.ChangeAvailability(connector_id=evse_id, type=word)
        from ocpp.v201 import call

        return call.ChangeAvailability(operational_status=word, evse={"id": evse_id})


class Session:
    """The scripted session: each step acts like a driver, EV or CSMS, then waits for the agent."""

    def __init__(self, *, agent, csms, view, ocpp_version: str):
        self.agent, self.csms, self.view = agent, csms, view
        self.hal = agent.hal
        self.terms = Terms(ocpp_version)

    def state(self) -> list[dict]:
        """Every EVSE as `ocpp-agent sim state` shows it (hardware plus the agent's status)."""
        return self.agent.mock_control.answer(json.dumps({"cmd": "state"}))["evses"]

    def evse(self, evse_id: int) -> dict:
        """One EVSE of ``state()``."""
        return next(e for e in self.state() if e["id"] == evse_id)

    async def until(self, predicate, what: str) -> None:
        """Poll ``predicate`` (agent or CSMS state) until true; DemoFailed naming ``what`` if it never is.

        Polling, because the hardware state has no event to wait on; 50 ms is
        far below what a person watching the panel can see.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT_S
        while not predicate():
            if loop.time() > deadline:
                raise DemoFailed(f"{what}: not reached within {STEP_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)

    def steps(self) -> list[tuple[str, object, set[int]]]:
        """The session as (title, coroutine function, EVSEs it changes) triples, in order."""
        boot = "boot: the agent connects, BootNotification, every EVSE reports its status"
        if self.terms.v21:  # within the boot step: a step more would make the demo a second and a pause longer
            boot += ("; the CSMS sets a default tariff, 0.30 EUR/kWh + 0.12 EUR/min incl. VAT (SetDefaultTariff): "
                     "the station prices the session itself")
        return [
            (boot, self.boot, {1, 2}),
            ("plug the cable into EVSE 1 (pilot A -> B)", self.plug, {1}),
            (f"tap card {CARD}: Authorize, then the transaction starts", self.tap_start, {1}),
            ("the EV requests energy (pilot C): contactor closes, 7.4 kW", self.ev_charges, {1}),
            (f"charging: meter values every {SAMPLE_S} s", self.charging, {1}),
            (f"CSMS limits EVSE 1 to {LIMIT_A:g} A (SetChargingProfile): the offered current drops",
             self.smart_limit, {1}),
            ("CSMS takes EVSE 2 out of service (ChangeAvailability Inoperative)", self.evse2_inoperative, {1, 2}),
            (f"tap card {CARD} again: the transaction stops, contactor opens, lock releases", self.tap_stop, {1}),
            ("unplug the cable from EVSE 1 (pilot A): Available again", self.unplug, {1}),
            ("CSMS puts EVSE 2 back in service (ChangeAvailability Operative)", self.evse2_operative, {1, 2}),
        ]

    async def boot(self) -> None:
        """The agent boots and reports every EVSE Available."""
        await self.csms.wait_for_call("BootNotification", timeout=STEP_TIMEOUT_S)
        # The agent starts out Available; wait until the CSMS has been told so.
        await self.until(lambda: all(self.csms.status[(STATION_ID, e)] == "Available" for e in (1, 2)),
                         "every EVSE reported Available")
        if self.terms.v21:
            await self.set_tariff()

    async def set_tariff(self) -> None:
        """2.1: the CSMS installs a default tariff on every EVSE; the running cost will show on the display."""
        from ocpp.v21 import call

        result = await self.csms.call(STATION_ID, call.SetDefaultTariff(evse_id=0, tariff=TARIFF))
        if result.status != "Accepted":
            raise DemoFailed(f"SetDefaultTariff: the agent answered {result.status}")

    def display(self) -> str | None:
        """What the station's display shows now."""
        return self.agent.mock_control.answer(json.dumps({"cmd": "state"}))["display"]

    async def plug(self) -> None:
        """A driver plugs the cable into EVSE 1."""
        self.hal.plug(1)
        await self.until(lambda: self.evse(1)["status"] == self.terms.plugged, f"EVSE 1 {self.terms.plugged}")

    async def tap_start(self) -> None:
        """The driver taps the card: the CSMS authorizes it and the transaction starts."""
        self.hal.tap(CARD)
        await self.until(lambda: self.csms.calls("Authorize"), "Authorize sent")
        await self.until(lambda: self.terms.started(self.csms), "transaction start sent")
        await self.until(lambda: self.evse(1)["transaction_id"] is not None, "EVSE 1 has a transaction")

    async def ev_charges(self) -> None:
        """The EV asks for energy and draws 7.4 kW once the contactor is closed."""
        # The EV draws its power once the contactor is closed; set it first so the meter moves at once.
        self.hal.set_power(1, EV_POWER_W)
        self.hal.ev_charge(1, True)
        await self.until(lambda: self.evse(1)["contactor_closed"] and self.evse(1)["power_W"] > 0,
                         "EVSE 1 contactor closed and power flowing")
        await self.until(lambda: self.evse(1)["status"] == self.terms.charging, f"EVSE 1 {self.terms.charging}")

    async def charging(self) -> None:
        """Charging goes on until two periodic meter values have reached the CSMS."""
        seen = self.terms.meter_reports(self.csms)
        await self.until(lambda: self.terms.meter_reports(self.csms) >= seen + 2, "two meter value reports")
        if self.terms.v21:  # the station's own running cost, from the tariff
            await self.until(lambda: (self.display() or "").startswith("Cost: EUR"), "the running cost on the display")

    async def smart_limit(self) -> None:
        """A smart-charging profile lowers the current offered to the EV; the EV follows it."""
        result = await self.csms.call(STATION_ID, self.terms.limit_profile(1, LIMIT_A))
        if result.status != "Accepted":
            raise DemoFailed(f"SetChargingProfile: the agent answered {result.status}")
        await self.until(lambda: self.evse(1)["current_limit_A"] == LIMIT_A, f"EVSE 1 offers {LIMIT_A:g} A")
        self.hal.set_power(1, LIMIT_A * 230.0 * 3)  # the EV draws what it is offered now

    async def evse2_inoperative(self) -> None:
        """The CSMS takes EVSE 2 out of service while EVSE 1 charges on."""
        await self._change_availability(2, operative=False, expect="Unavailable")
        # Charging on EVSE 1 goes on meanwhile: wait for one more reading to show it.
        seen = self.terms.meter_reports(self.csms)
        await self.until(lambda: self.terms.meter_reports(self.csms) > seen, "another meter value report")

    async def tap_stop(self) -> None:
        """The same card again stops the session: contactor opens, then the lock releases."""
        self.hal.tap(CARD)
        await self.until(lambda: self.terms.ended(self.csms), "transaction end sent")
        await self.until(lambda: not self.evse(1)["contactor_closed"], "EVSE 1 contactor open")
        await self.until(lambda: not self.evse(1)["locked"], "EVSE 1 lock released")
        if self.terms.v21:
            ended = self.terms.events(self.csms, "Ended")[-1].payload
            total = (ended.get("costDetails") or {}).get("totalCost") or {}
            if "total" not in total:
                raise DemoFailed("the Ended event has no costDetails total")
            usage = ended["costDetails"]["totalUsage"]
            self.view.note(f"Ended event: costDetails total {total['currency']} {cents(total['total'].get('inclTax'))} "
                           f"incl. VAT ({cents(total['total']['exclTax'])} excl.) for {usage['energy']:g} Wh and "
                           f"{usage['chargingTime']} s charging, tariff {TARIFF['tariff_id']}")

    async def unplug(self) -> None:
        """The driver unplugs: EVSE 1 is Available again."""
        self.hal.unplug(1)
        await self.until(lambda: self.evse(1)["status"] == "Available", "EVSE 1 Available")

    async def evse2_operative(self) -> None:
        """The CSMS puts EVSE 2 back in service."""
        await self._change_availability(2, operative=True, expect="Available")

    async def _change_availability(self, evse_id: int, *, operative: bool, expect: str) -> None:
        result = await self.csms.call(STATION_ID, self.terms.change_availability(evse_id, operative))
        if result.status != "Accepted":
            raise DemoFailed(f"ChangeAvailability on EVSE {evse_id}: the agent answered {result.status}")
        await self.until(lambda: self.evse(evse_id)["status"] == expect, f"EVSE {evse_id} {expect}")

    async def play(self, *, interactive: bool, hint: str) -> None:
        """Run every step (or only the boot, then the hint, when interactive)."""
        steps = self.steps()[:1] if interactive else self.steps()
        for number, step in enumerate(steps, 1):
            await self._run_step(step, *((None, None) if interactive else (number, len(steps))))
        if interactive:
            self.view.step("interactive: waiting for `ocpp-agent sim` commands (Ctrl-C stops)")
            self.view.note(hint)
            await asyncio.Event().wait()

    async def _run_step(self, step, number: int | None, total: int | None) -> None:
        title, action, changed = step
        self.view.step(title, number, total)
        try:
            await action()
        except asyncio.TimeoutError:
            raise DemoFailed(f"step {number} ({title}): no answer from the agent in time") from None
        except DemoFailed as exc:
            raise DemoFailed(f"step {number} ({title}): {exc}") from None
        await asyncio.sleep(0.1)  # let the answers in flight print before the state does
        self.view.report(self.state(), ids=changed, display=self.display())
        await asyncio.sleep(PAUSE_S)


def cli_command() -> str:
    """How to call this very installation's `ocpp-agent` from a shell (the venv may not be activated)."""
    script = Path(sys.executable).parent / "ocpp-agent"
    if not script.exists():
        return f"{sys.executable} -m agent"
    on_path = shutil.which("ocpp-agent")
    # Only the short name if it resolves to this install, not to another version elsewhere on PATH.
    return "ocpp-agent" if on_path and Path(on_path).resolve() == script.resolve() else str(script)


def sim_hint(config_path: Path) -> str:
    """How to drive the running demo from another terminal."""
    cli = cli_command()
    sim = f"{cli} sim --config {config_path}"
    return "\n".join([
        "interactive: the station is yours. A session, from another terminal:",
        f"  {sim} plug 1",
        f"  {sim} tap {CARD}",
        f"  {sim} ev 1 charge",
        f"  {sim} power 1 7400",
        f"  {sim} tap {CARD}      # the same card again stops it",
        f"  {sim} unplug 1",
        f"  {sim} state           # `sim help` lists the rest (faults, ...)",
        f"  {cli} log --config {config_path} --limit 10",
        "Ctrl-C stops the demo.",
    ])


async def _refresh(session: Session, period: float = 0.25) -> None:
    """Keep the live panel's EVSE table current (energy grows between OCPP messages)."""
    while True:
        session.view.update(session.state(), display=session.display())
        await asyncio.sleep(period)


async def _run_until_stopped(coro) -> bool:
    """Run ``coro`` until it ends or SIGINT/SIGTERM arrives; True if it was interrupted."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    work, stopped = asyncio.ensure_future(coro), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        interrupted = not work.done()
        for task in (work, stopped):
            task.cancel()
        # Let the cancelled session unwind before the agent shuts down under it.
        await asyncio.gather(work, stopped, return_exceptions=True)
    if not interrupted and work.exception() is not None:
        raise work.exception()
    return interrupted


async def play(*, ocpp_version: str, interactive: bool, view) -> int:
    """Start the CSMS and the agent, play the session, stop everything with the outputs safe."""
    csms = await _start_csms(ocpp_version, view)
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-agent-demo-") as tmp:
            config_path = write_demo_config(Path(tmp), url=csms.url, ocpp_version=ocpp_version)
            view.note(f"OCPP {ocpp_version}: embedded CSMS at {csms.url}, station {STATION_ID} on the mock HAL "
                      f"(config {config_path})")
            interrupted = await _play_agent(config_path, csms, view, ocpp_version=ocpp_version,
                                            interactive=interactive)
    finally:
        await csms.stop()
    return _finish(view, interactive=interactive, interrupted=interrupted)


async def _start_csms(ocpp_version: str, view):
    """The embedded CSMS, listening on a free loopback port, showing every frame in ``view``."""
    from agent.testcsms.server import CsmsBehaviour, CsmsSimulator

    csms = CsmsSimulator(ocpp_version=ocpp_version, behaviour=CsmsBehaviour(heartbeat_interval=HEARTBEAT_S),
                         on_frame=lambda _station, direction, text: view.message(direction == "in", text))
    try:
        await csms.start()
    except OSError as exc:
        raise DemoFailed(f"the embedded CSMS cannot listen on 127.0.0.1: {exc.strerror or exc}") from None
    return csms


async def _play_agent(config_path: Path, csms, view, *, ocpp_version: str, interactive: bool) -> bool:
    """Run the agent on the demo config through the session; True if a signal cut it short."""
    from agent.app import Agent
    from agent.config import load_config

    agent = Agent(load_config(config_path), config_path=str(config_path))
    dashboard = None
    try:
        await agent.start()
        if interactive:  # the dashboard beside the station, as on a charger (agent.commands.demo_dashboard)
            dashboard, line = await start_dashboard(config_path)
            view.note(line)
        session = Session(agent=agent, csms=csms, view=view, ocpp_version=ocpp_version)
        refresher = asyncio.create_task(_refresh(session))
        try:
            return await _run_until_stopped(session.play(interactive=interactive, hint=sim_hint(config_path)))
        finally:
            refresher.cancel()
    finally:
        stop_dashboard(dashboard)
        await agent.shutdown()


def _finish(view, *, interactive: bool, interrupted: bool) -> int:
    """The closing line and the exit code: an interrupted non-interactive demo did not complete."""
    view.close()  # the final panel stays on screen, the closing line goes below it
    if interrupted and not interactive:
        view.note("demo interrupted: agent stopped, outputs safe")
        return 130
    view.note("demo finished: agent stopped, outputs safe")
    return 0


def run_demo(*, ocpp_version: str = "1.6", interactive: bool = False) -> int:
    """Entry point of `ocpp-agent demo`: 0 when the session played (or Ctrl-C in interactive mode), else 1."""
    try:
        import websockets  # noqa: F401  (the embedded CSMS needs it)
    except ImportError:
        print("ocpp-agent demo: needs the 'websockets' package: pip install 'ocpp-agent[demo]'", file=sys.stderr)
        return 1
    from agent.errors import STATION_ERRORS

    configure_logging("warning")
    view = make_view(sys.stdout, title=f"ocpp-agent demo, OCPP {ocpp_version}, station {STATION_ID}")
    try:
        return asyncio.run(play(ocpp_version=ocpp_version, interactive=interactive, view=view))
    except (DemoFailed, *STATION_ERRORS) as exc:
        error = exc
    finally:
        view.close()  # before the error line, so a live panel is finished and the cursor is back
    print(f"ocpp-agent demo: {_one_line(error)}", file=sys.stderr)
    return 1


def _one_line(exc: BaseException) -> str:
    """An error as one line (a ConfigError, for one, lists its problems on several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
