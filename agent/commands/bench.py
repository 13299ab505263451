"""`ocpp-agent bench`: hardware bring-up on a bench rig, one device at a time.

Each subcommand builds and opens only the device it needs, from the same
config the agent uses. It refuses to run while the agent holds the data
directory (the service owns the hardware then). Outputs are always left in the
safe state: a relay is switched, its feedback shown, and it is switched back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.errors import STATION_ERRORS
from agent.runtime.lockfile import AlreadyRunning, DataDirLock


def build_parser() -> argparse.ArgumentParser:
    """The bench subcommands."""
    parser = argparse.ArgumentParser(prog="ocpp-agent bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="device", required=True, metavar="DEVICE")
    meter = sub.add_parser("meter", help="read the meter of an EVSE once, or continuously with --watch")
    meter.add_argument("evse", type=int)
    meter.add_argument("--json", action="store_true", help="one reading as JSON")
    meter.add_argument("--watch", action="store_true", help="keep reading; Ctrl-C stops")
    meter.add_argument("--count", type=int, default=0, help="with --watch: stop after N readings")
    meter.add_argument("--interval", type=float, default=1.0)
    rfid = sub.add_parser("rfid", help="wait for a card on the reader")
    rfid.add_argument("--timeout", type=float, default=30.0)
    rfid.add_argument("--json", action="store_true")
    for name, what in (("contactor", "close the contactor, show the feedback, open it"),
                       ("lock", "lock the connector, show the feedback, unlock it")):
        relay = sub.add_parser(name, help=what)
        relay.add_argument("evse", type=int)
        relay.add_argument("--hold", type=float, default=1.0, help="seconds to hold before switching back")
    pilot = sub.add_parser("pilot", help="watch the EV pilot state")
    pilot.add_argument("evse", type=int)
    pilot.add_argument("--timeout", type=float, default=30.0)
    selftest = sub.add_parser("selftest", help="cycle every output, check every feedback and the meter")
    selftest.add_argument("--json", action="store_true")
    return parser


def run_bench(config, argv: list[str]) -> int:
    """Entry point of `ocpp-agent bench`; returns the exit status."""
    args = build_parser().parse_args(argv)
    if hasattr(args, "evse") and args.evse not in {e.id for e in config.evse}:
        print(f"ocpp-agent bench: no EVSE {args.evse} in the config", file=sys.stderr)
        return 1
    data_dir = Path(config.station.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    lock = DataDirLock(data_dir, purpose="ocpp-agent bench")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(f"ocpp-agent bench: refusing to touch the hardware: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_COMMANDS[args.device](config, args))
    except KeyboardInterrupt:
        return 130
    except STATION_ERRORS as exc:
        print(f"ocpp-agent bench: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()


# ----------------------------------------------------------------- devices


class _Events:
    """Collects HAL events so the bench can report faults."""

    def __init__(self):
        self.items: list = []
        self.changed = asyncio.Event()

    def __call__(self, event) -> None:
        self.items.append(event)
        self.changed.set()


async def _station(config, events: _Events):
    """The whole configured HAL, for commands that need GPIO devices (started by the caller)."""
    from hal.registry import build_hal

    return await build_hal(config, emit=events)


def _evse_config(config, evse_id: int):
    return next(e for e in config.evse if e.id == evse_id)


async def _meter(config, evse_id: int, events: _Events):
    """Only the meter of ``evse_id``; the mock one reads the persisted mock register."""
    evse = _evse_config(config, evse_id)
    if evse.meter.driver == "mock":
        hal = await _station(config, events)
        return hal.evse(evse_id).meter, hal.close
    from hal.registry import build_meter

    return await build_meter(evse, events)


# ---------------------------------------------------------------- commands


async def _cmd_meter(config, args) -> int:
    events = _Events()
    meter, release = await _meter(config, args.evse, events)
    await meter.start()
    latencies, failures = [], 0
    try:
        while True:
            started = time.perf_counter()
            try:
                reading = await meter.read()
            except STATION_ERRORS as exc:
                failures += 1
                print(f"read failed: {exc}", file=sys.stderr)
                if not args.watch:
                    return 1
            else:
                latencies.append((time.perf_counter() - started) * 1000)
                _print_reading(reading, latencies[-1], as_json=args.json)
            if not args.watch or (args.count and len(latencies) + failures >= args.count):
                break
            await asyncio.sleep(args.interval)
    finally:
        await meter.stop()
        await _call(release)
    if args.watch and len(latencies) > 1 and not args.json:
        print(f"{len(latencies)} readings, {failures} failed; latency p50 {statistics.median(latencies):.1f} ms, "
              f"max {max(latencies):.1f} ms")
    return 0 if latencies else 1


def _print_reading(reading, latency_ms: float, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(reading.as_dict()), flush=True)
        return
    volts = " ".join(f"{v:.1f}" for v in reading.voltage_V)
    amps = " ".join(f"{a:.2f}" for a in reading.current_A)
    print(f"{reading.energy_import_Wh:12.1f} Wh  {reading.power_W:9.1f} W  V [{volts}]  A [{amps}]  "
          f"({latency_ms:.1f} ms)", flush=True)


async def _cmd_rfid(config, args) -> int:
    rfid = config.hal.rfid
    if rfid.driver == "mock":
        print("ocpp-agent bench rfid: hal.rfid.driver is 'mock'; configure the real reader", file=sys.stderr)
        return 1
    from hal.drivers.serial_rfid import read_one_token

    token = await read_one_token(protocol=rfid.driver, port=rfid.port, baudrate=rfid.baudrate,
                                 timeout_s=args.timeout)
    if token is None:
        print(f"no card within {args.timeout:g} s", file=sys.stderr)
        return 1
    print(json.dumps({"id_token": token}) if args.json else token, flush=True)
    return 0


async def _cmd_relay(config, args) -> int:
    """Cycle the contactor, or the lock (with its contactor, which must read open to unlock)."""
    events = _Events()
    hal = await _station(config, events)
    hardware = hal.evse(args.evse)
    try:
        if args.device == "contactor":
            await hal.start(only=[hardware.contactor])
            result = await _cycle_contactor(hardware.contactor, hold_s=args.hold)
        else:
            await hal.start(only=[hardware.contactor, hardware.lock])
            result = await _cycle_lock(hardware.lock, hold_s=args.hold)
    finally:
        await hal.close()
    _print_checks(result, events)
    return 0 if all(c.ok for c in result) else 1


async def _cmd_pilot(config, args) -> int:
    events = _Events()
    hal = await _station(config, events)
    pilot = hal.evse(args.evse).pilot
    try:
        await hal.start(only=[pilot])
        print(f"pilot {pilot.state.value}", flush=True)
        deadline = time.monotonic() + args.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            events.changed.clear()
            try:
                await asyncio.wait_for(events.changed.wait(), remaining)
            except asyncio.TimeoutError:
                break
            print(f"pilot {pilot.state.value}", flush=True)
    finally:
        await hal.close()
    return 0


# ---------------------------------------------------------------- self-test


@dataclass(frozen=True)
class Check:
    """One line of a self-test."""

    name: str
    ok: bool
    detail: str


async def _cycle_contactor(contactor, *, hold_s: float) -> list[Check]:
    contactor.allow_power(True)  # the bench operator is the interlock here
    try:
        closed = await contactor.close()
        checks = [Check("contactor close", closed and contactor.feedback_closed,
                        f"feedback {'closed' if contactor.feedback_closed else 'OPEN'}")]
        await asyncio.sleep(hold_s)
    finally:
        contactor.allow_power(False)
        opened = await contactor.open()
    checks.append(Check("contactor open", opened and not contactor.feedback_closed,
                        f"feedback {'CLOSED' if contactor.feedback_closed else 'open'}"))
    return checks


async def _cycle_lock(lock, *, hold_s: float) -> list[Check]:
    if not getattr(lock, "fitted", True):
        return [Check("lock", True, "no lock fitted")]
    locked = await lock.lock()
    checks = [Check("lock", locked and lock.locked, f"feedback {'locked' if lock.locked else 'UNLOCKED'}")]
    await asyncio.sleep(hold_s)
    unlocked = await lock.unlock()
    checks.append(Check("unlock", unlocked and not lock.locked, f"feedback {'LOCKED' if lock.locked else 'unlocked'}"))
    return checks


async def _check_meter(meter) -> Check:
    try:
        reading = await meter.read()
    except STATION_ERRORS as exc:
        return Check("meter read", False, str(exc))
    return Check("meter read", True, f"{reading.energy_import_Wh:.1f} Wh, {reading.power_W:.0f} W")


async def _cmd_selftest(config, args) -> int:
    events = _Events()
    hal = await _station(config, events)
    checks: list[tuple[int | None, Check]] = []
    try:
        await hal.start()
        for evse_id, hardware in hal.evses.items():
            checks += [(evse_id, c) for c in await _cycle_contactor(hardware.contactor, hold_s=0.2)]
            checks += [(evse_id, c) for c in await _cycle_lock(hardware.lock, hold_s=0.2)]
            checks.append((evse_id, await _check_meter(hardware.meter)))
            checks.append((evse_id, Check("pilot", True, f"state {hardware.pilot.state.value}")))
    finally:
        await hal.close()
    faults = [e for e in events.items if type(e).__name__ == "FaultRaised"]
    checks += [(e.evse_id, Check(f"fault {e.code}", False, e.info or "raised")) for e in faults]
    ok = all(c.ok for _, c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [{"evse": i, "name": c.name, "ok": c.ok, "detail": c.detail}
                                               for i, c in checks]}))
    else:
        for evse_id, check in checks:
            print(f"EVSE {evse_id if evse_id is not None else '-'}  {check.name:<18} "
                  f"{'PASS' if check.ok else 'FAIL'}  {check.detail}")
        print("self-test " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def _print_checks(checks: list[Check], events: _Events) -> None:
    for check in checks:
        print(f"{check.name:<18} {'PASS' if check.ok else 'FAIL'}  {check.detail}")
    for event in events.items:
        if type(event).__name__ == "FaultRaised":
            print(f"fault raised: {event.code} {event.info}")


async def _call(release) -> None:
    result = release()
    if asyncio.iscoroutine(result):
        await result


_COMMANDS = {
    "meter": _cmd_meter,
    "rfid": _cmd_rfid,
    "contactor": _cmd_relay,
    "lock": _cmd_relay,
    "pilot": _cmd_pilot,
    "selftest": _cmd_selftest,
}
