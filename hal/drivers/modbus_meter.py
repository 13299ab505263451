"""Energy meters on a Modbus RTU line (RS-485) through pymodbus' asyncio serial client.

Several meters with different device ids often share one RS-485 line. All
of them then use ONE ``ModbusBus`` (one pymodbus client, one open port): the
bus lets one request out at a time, keeps the line quiet between frames for
as long as the models need, and reopens the port after it disappears.

Reading a meter is one bulk read per block of its register map; the raw
registers go through the pure ``hal.meters.decode``. This module imports
pymodbus at the top: the HAL registry imports it only when a configured
meter names the ``modbus`` driver. Nothing is opened before the first read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from hal.errors import HalStartError, MeterReadError, MeterTimeout
from hal.events import Emit, MeterReading
from hal.meters import Block, RegisterMap, decode, load_register_map
from hal.roles import EnergyMeter
from hal.roles._device import check_positive
from hal.roles.meter_polling import MeterPoller

log = logging.getLogger(__name__)

PARITIES = ("N", "E", "O")
MAX_RETRIES = 5
# Request frame of a register read: id, function, address (2), count (2), CRC (2).
_REQUEST_BYTES = 8
# Answer: id, function, byte count, 2 per register, CRC (2).
_ANSWER_OVERHEAD_BYTES = 5
# Answer to a register write (FC6 or FC16): id, function, address (2), value or count (2), CRC (2).
_WRITE_ANSWER_BYTES = 8
# The client's own timeout is only a backstop behind our per-request one.
_BACKSTOP_TIMEOUT_S = 5.0
_EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "device failure", 5: "acknowledge", 6: "device busy",
    10: "gateway path unavailable", 11: "gateway target failed to respond",
}


class ModbusBus:
    """One RS-485 line: one pymodbus client shared by every meter on ``port``, one frame at a time.

    Meters are served in turn (an asyncio.Lock). Before each request the line
    stays quiet for the longest of: 3.5 character times (Modbus RTU), the gap
    of the model answering last and the gap of the model asked next. The
    port is opened on the first request and reopened after it disappears
    (USB adapter unplugged, pty closed). Use ``open_bus`` to get the shared
    instance of a port.

    ``poller`` is the one owner of the meter reads on this line: every meter
    on it is polled by that one task, in turn, on its own interval.
    """

    def __init__(self, port: str, *, baudrate: int = 9600, parity: str = "N",
                 stopbits: int = 1, bytesize: int = 8,
                 client_factory: Callable[..., AsyncModbusSerialClient] = AsyncModbusSerialClient) -> None:
        if not isinstance(port, str) or not port:
            raise ValueError(f"port must be a device path or pyserial URL, not {port!r}")
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ValueError(f"baudrate must be a positive integer, not {baudrate!r}")
        if parity not in PARITIES or stopbits not in (1, 2) or bytesize not in (7, 8):
            raise ValueError(f"serial settings {bytesize}{parity}{stopbits} are not valid")
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self._client_factory = client_factory
        self._client: AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_end = float("-inf")    # loop time the last exchange ended
        self._hold_until = float("-inf")  # no request before this loop time
        self._users: dict[int, str] = {}  # device id -> who uses it
        self.poller = MeterPoller(name=f"modbus {port}")
        self.requests = 0
        self.failed_requests = 0

    @property
    def settings(self) -> tuple[int, str, int, int]:
        """(baudrate, parity, stopbits, bytesize): every device on the line must share them."""
        return self.baudrate, self.parity, self.stopbits, self.bytesize

    @property
    def connected(self) -> bool:
        """True while the port is open."""
        return self._client is not None and self._client.connected

    @property
    def device_ids(self) -> tuple[int, ...]:
        """Device ids claimed by meters on this line."""
        return tuple(sorted(self._users))

    @property
    def char_time_s(self) -> float:
        """Time one character takes on the line (start, data, parity and stop bits)."""
        bits = 1 + self.bytesize + (self.parity != "N") + self.stopbits
        return bits / self.baudrate

    @property
    def silence_s(self) -> float:
        """Modbus RTU inter-frame silence: 3.5 characters, fixed 1.75 ms above 19200 baud."""
        return 0.00175 if self.baudrate > 19200 else 3.5 * self.char_time_s

    def answer_time_s(self, count: int) -> float:
        """Transmission time of the answer to a read of ``count`` registers."""
        return (_ANSWER_OVERHEAD_BYTES + 2 * count) * self.char_time_s

    def attempt_timeout_s(self, count: int, *, timeout_s: float) -> float:
        """How long one request for ``count`` registers may take: ``timeout_s`` plus both frames' transmission."""
        return timeout_s + _REQUEST_BYTES * self.char_time_s + self.answer_time_s(count)

    def worst_case_s(self, blocks: Sequence[Block], *, timeout_s: float, retries: int, gap_s: float) -> float:
        """Upper bound of one read of ``blocks`` that ends in failure or at the last retries.

        It includes waiting out a previous unanswered request, then for each
        block every attempt with its gap, timeout and a late answer passing.
        """
        gap = max(gap_s, self.silence_s)
        timeouts = [self.attempt_timeout_s(b.count, timeout_s=timeout_s) for b in blocks]
        hold = max(timeouts, default=0.0) + gap
        return hold + sum((retries + 1) * (gap + limit + self.answer_time_s(b.count))
                          for b, limit in zip(blocks, timeouts))

    def claim(self, device_id: int, *, user: str) -> None:
        """Reserve ``device_id`` for ``user``; HalStartError if another meter has it."""
        if device_id in self._users:
            raise HalStartError(f"Modbus device id {device_id} on {self.port} is already used by "
                                f"{self._users[device_id]}")
        self._users[device_id] = user

    async def release(self, device_id: int) -> None:
        """Give ``device_id`` back; the last user closes the port and forgets the bus."""
        self._users.pop(device_id, None)
        if not self._users:
            await self.close()
            _forget(self)

    async def read_blocks(self, *, device_id: int, blocks: Sequence[Block], gap_s: float,
                          timeout_s: float, retries: int) -> dict[int, list[int]]:
        """Read every block of one meter, in turn with the other meters: {block start: registers}.

        Each request is tried ``retries`` + 1 times when the answer is missing
        or garbled. Raises MeterTimeout (no valid answer) or MeterReadError
        (port unusable, exception response); never returns partial data.
        """
        self._loop = asyncio.get_running_loop()
        async with self._lock:
            client = await self._open()
            return {block.start: await self._read_block(client, device_id, block, gap_s=gap_s,
                                                         timeout_s=timeout_s, retries=retries)
                    for block in blocks}

    async def write_registers(self, *, device_id: int, address: int, values: Sequence[int],
                              gap_s: float, timeout_s: float, retries: int) -> None:
        """Write ``values`` to holding registers from ``address``, in turn with the other devices.

        One value goes out as FC6 (write single register, which every device
        we know accepts), several as FC16. A missing or garbled answer is
        retried ``retries`` times: writing the same values again is harmless.
        Raises MeterTimeout (no valid answer) or MeterReadError (port
        unusable, exception response): the bus's errors, whatever the device.
        """
        values = list(values)
        if not 1 <= len(values) <= 123 or not all(type(v) is int and 0 <= v <= 0xFFFF for v in values):
            raise ValueError(f"values must be 1..123 register values 0..0xFFFF, not {values!r}")
        self._loop = asyncio.get_running_loop()
        # Request: id, function, address (2), then FC6 the value (2), FC16 count (2), byte
        # count and the values; CRC (2). The answer echoes 8 bytes either way.
        request_bytes = 8 if len(values) == 1 else 9 + 2 * len(values)
        limit = timeout_s + (request_bytes + _WRITE_ANSWER_BYTES) * self.char_time_s
        async with self._lock:
            client = await self._open()
            await self._write_attempts(client, device_id, address, values, gap_s=gap_s,
                                       limit=limit, retries=retries)

    async def _write_attempts(self, client, device_id: int, address: int, values: list[int], *,
                              gap_s: float, limit: float, retries: int) -> None:
        """Send one write up to ``retries`` + 1 times, keeping the line quiet as after a read."""
        for attempt in range(retries + 1):
            sent = await self._quiet(gap_s)
            try:
                await self._write_request(client, device_id, address, values, limit=limit)
            except MeterTimeout:
                if attempt < retries and client.connected:
                    self._hold(gap_s, extra_s=_WRITE_ANSWER_BYTES * self.char_time_s)
                    continue
                self._hold(gap_s, until=sent + 2 * limit)
                raise
            except MeterReadError:
                self._hold(gap_s)
                raise
            except asyncio.CancelledError:
                # As for a read: the request is out and its answer may still come.
                self._hold(gap_s, until=sent + 2 * limit)
                raise
            self._hold(gap_s, until=sent + 2 * limit if attempt else None)
            return

    async def _write_request(self, client, device_id: int, address: int, values: list[int], *,
                             limit: float) -> None:
        what = (f"device {device_id} on {self.port}: FC{6 if len(values) == 1 else 16}"
                f" 0x{address:04X}+{len(values)}")
        self.requests += 1
        try:
            async with asyncio.timeout(limit):
                if len(values) == 1:
                    response = await client.write_register(address, values[0], device_id=device_id)
                else:
                    response = await client.write_registers(address, values, device_id=device_id)
        except TimeoutError as exc:
            self.failed_requests += 1
            raise MeterTimeout(f"{what}: no valid answer within {limit:.3f} s") from exc
        except ModbusIOException as exc:
            self.failed_requests += 1
            raise MeterTimeout(f"{what}: {exc}") from exc
        except (ConnectionException, ModbusException) as exc:
            self.failed_requests += 1
            raise MeterReadError(f"{what}: {exc}") from exc
        if response.isError():
            self.failed_requests += 1
            code = getattr(response, "exception_code", None)
            raise MeterReadError(f"{what}: exception response {code} "
                                 f"({_EXCEPTION_NAMES.get(code, 'unknown')})")

    async def close(self) -> None:
        """Close the port (the next read reopens it)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def usable_in(self, loop: asyncio.AbstractEventLoop) -> bool:
        """False once the bus served a different event loop (its lock and client belong there)."""
        return self._loop is None or self._loop is loop

    async def _open(self) -> AsyncModbusSerialClient:
        if self._client is None:
            # Reconnecting is ours to do on the next read (reconnect_delay=0): pymodbus'
            # background reconnect task would retry forever behind our back.
            self._client = self._client_factory(
                self.port, framer=FramerType.RTU, baudrate=self.baudrate, parity=self.parity,
                stopbits=self.stopbits, bytesize=self.bytesize, timeout=_BACKSTOP_TIMEOUT_S,
                retries=0, reconnect_delay=0, name=f"modbus {self.port}")
        if self._client.connected:
            return self._client
        try:
            opened = await self._client.connect()
        except Exception as exc:  # e.g. ValueError from pyserial for a malformed URL
            raise MeterReadError(f"cannot open Modbus port {self.port!r}: {exc}") from exc
        if not opened:
            raise MeterReadError(f"cannot open Modbus port {self.port!r} (missing or busy?)")
        log.info("Modbus port %s open (%d %d%s%d)", self.port, self.baudrate,
                 self.bytesize, self.parity, self.stopbits)
        return self._client

    async def _read_block(self, client, device_id: int, block: Block, *, gap_s: float,
                          timeout_s: float, retries: int) -> list[int]:
        limit = self.attempt_timeout_s(block.count, timeout_s=timeout_s)
        for attempt in range(retries + 1):
            sent = await self._quiet(gap_s)
            try:
                registers = await self._request(client, device_id, block, limit=limit)
            except MeterTimeout:
                if attempt < retries and client.connected:
                    # A late answer before the retry is harmless (same registers): let it end.
                    self._hold(gap_s, extra_s=self.answer_time_s(block.count))
                    continue
                self._hold(gap_s, until=sent + 2 * limit)
                raise
            except MeterReadError:
                self._hold(gap_s)
                raise
            except asyncio.CancelledError:
                # EnergyMeter.read's timeout, or shutdown: the request is out, its answer may come.
                self._hold(gap_s, until=sent + 2 * limit)
                raise
            # Answered at a retry: maybe by the previous attempt, whose own answer may follow.
            self._hold(gap_s, until=sent + 2 * limit if attempt else None)
            return registers
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _quiet(self, gap_s: float) -> float:
        """Wait until the next request may go out (``gap_s``: the gap its model needs); returns that time."""
        loop = asyncio.get_running_loop()
        start = max(self._last_end + max(gap_s, self.silence_s), self._hold_until)
        if start > loop.time():
            await asyncio.sleep(start - loop.time())
        return loop.time()

    def _hold(self, gap_s: float, *, extra_s: float = 0.0, until: float | None = None) -> None:
        """Keep the line quiet after an exchange: the model's gap, plus ``extra_s``, and not before ``until``.

        RTU answers to FC3/FC4 carry no address, so an answer arriving after
        its timeout would be taken for the answer to the next request. Before
        a different request follows an unanswered one, the line therefore
        stays quiet until that request is two timeouts old; a meter answering
        later than that is beyond what we protect against.
        """
        now = asyncio.get_running_loop().time()
        self._last_end = now
        self._hold_until = now + max(gap_s, self.silence_s) + extra_s
        if until is not None:
            self._hold_until = max(self._hold_until, until + gap_s)

    async def _request(self, client, device_id: int, block: Block, *, limit: float) -> list[int]:
        read = client.read_input_registers if block.function_code == 4 else client.read_holding_registers
        what = f"device {device_id} on {self.port}: FC{block.function_code} 0x{block.start:04X}+{block.count}"
        self.requests += 1
        try:
            async with asyncio.timeout(limit):
                response = await read(block.start, count=block.count, device_id=device_id)
        except TimeoutError as exc:
            self.failed_requests += 1
            raise MeterTimeout(f"{what}: no valid answer within {limit:.3f} s") from exc
        except ModbusIOException as exc:  # a frame for another id, or the backstop timeout
            self.failed_requests += 1
            raise MeterTimeout(f"{what}: {exc}") from exc
        except (ConnectionException, ModbusException) as exc:
            self.failed_requests += 1
            raise MeterReadError(f"{what}: {exc}") from exc
        return self._registers(response, what, block)

    def _registers(self, response, what: str, block: Block) -> list[int]:
        if response.isError():
            self.failed_requests += 1
            code = getattr(response, "exception_code", None)
            raise MeterReadError(f"{what}: exception response {code} "
                                 f"({_EXCEPTION_NAMES.get(code, 'unknown')})")
        registers = list(response.registers)
        if len(registers) != block.count:
            # A stray answer to an earlier request: ours may still come, so it
            # counts as no valid answer (retried, and the line held quiet).
            self.failed_requests += 1
            raise MeterTimeout(f"{what}: stray answer with {len(registers)} registers")
        return registers

    def __repr__(self) -> str:
        return (f"<ModbusBus {self.port} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"
                f" {'open' if self.connected else 'closed'} devices={list(self.device_ids)}"
                f" requests={self.requests} failed={self.failed_requests}>")


# One bus per port, so meters configured on the same line share a client.
_buses: dict[str, ModbusBus] = {}


def _port_key(port: str) -> str:
    # A symlink (/dev/serial/by-id/..., a pty link) and its target are one line.
    return port if "://" in port else os.path.realpath(port)


def _forget(bus: ModbusBus) -> None:
    for key, known in list(_buses.items()):
        if known is bus:
            del _buses[key]


async def open_bus(port: str, *, baudrate: int = 9600, parity: str = "N", stopbits: int = 1,
                   bytesize: int = 8) -> ModbusBus:
    """The shared bus of ``port``: created on first use, the same object for every meter on the line.

    Opens nothing (the port opens on the first read). HalStartError if the
    line is already in use with other serial settings.
    """
    loop = asyncio.get_running_loop()
    key = _port_key(port)
    bus = _buses.get(key)
    if bus is not None and not bus.usable_in(loop):
        await bus.close()
        bus = None
    if bus is None:
        bus = _buses[key] = ModbusBus(port, baudrate=baudrate, parity=parity,
                                      stopbits=stopbits, bytesize=bytesize)
        bus._loop = loop
    elif bus.settings != (baudrate, parity, stopbits, bytesize):
        raise HalStartError(f"Modbus line {port} is already open as {bus.settings}; every meter on "
                            f"one line needs the same baudrate/parity/stopbits/bytesize")
    return bus


async def close_all_buses() -> None:
    """Close every shared bus and forget them (shutdown, tests)."""
    buses = list(_buses.values())
    _buses.clear()
    for bus in buses:
        await bus.close()


class ModbusMeter(EnergyMeter):
    """An energy meter on a Modbus RTU line, read with one bulk request per block of its register map.

    ``timeout_s`` is how long the meter may take to start answering; the
    transmission time of request and answer at the line's baud rate is added
    per request. ``retries`` repeats a request whose answer is missing or
    garbled. The base class turns failures into MeterReadError and, after
    ``offline_after`` of them in a row, fault ``meter-offline``. Its
    ``read_timeout_s`` defaults to twice the worst case of one full read, as
    the read may first wait for other meters on the line.

    ``start()`` opens nothing itself: a meter missing at boot becomes fault
    ``meter-offline`` after ``stale_after`` poll intervals, not a start-up
    failure, since charging may go on without it. It is polled every
    ``poll_interval_s`` by its line's poller (``ModbusBus.poller``), shared
    with the other meters on the line. ``stop()`` gives the device id back
    and the last meter on the line closes the port.
    """

    def __init__(self, evse_id: int, *, emit: Emit, bus: ModbusBus, device_id: int,
                 register_map: RegisterMap, timeout_s: float = 0.3, retries: int = 1,
                 offline_after: int = 3, read_timeout_s: float | None = None,
                 max_age_s: float | None = None, poll_interval_s: float = 1.0,
                 stale_after: int = 3) -> None:
        if isinstance(device_id, bool) or not isinstance(device_id, int) or not 1 <= device_id <= 247:
            raise ValueError(f"device_id must be a Modbus address 1..247, not {device_id!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            raise ValueError(f"retries must be an integer 0..{MAX_RETRIES}, not {retries!r}")
        self.timeout_s = check_positive("timeout_s", timeout_s)
        self.retries = retries
        self.worst_case_s = bus.worst_case_s(register_map.blocks, timeout_s=self.timeout_s,
                                             retries=retries, gap_s=register_map.min_gap_s)
        super().__init__(evse_id, emit=emit, offline_after=offline_after,
                         read_timeout_s=read_timeout_s or max(2.0, 2 * self.worst_case_s),
                         max_age_s=max_age_s, poll_interval_s=poll_interval_s,
                         stale_after=stale_after, poller=bus.poller)
        self.bus = bus
        self.device_id = device_id
        self.register_map = register_map
        bus.claim(device_id, user=f"EVSE {evse_id} meter")

    async def _read(self) -> MeterReading:
        blocks = await self.bus.read_blocks(
            device_id=self.device_id, blocks=self.register_map.blocks,
            gap_s=self.register_map.min_gap_s, timeout_s=self.timeout_s, retries=self.retries)
        return decode(self.register_map, blocks, timestamp=time.time())

    async def _stop(self) -> None:
        await self.bus.release(self.device_id)

    def __repr__(self) -> str:
        energy = "none" if self.last_reading is None else f"{self.last_reading.energy_import_Wh:.1f}Wh"
        return (f"<ModbusMeter evse={self.evse_id} {self.register_map.model} id={self.device_id}"
                f" on {self.bus.port} last={energy} failures={self.consecutive_failures}"
                f" {'offline' if self.offline else 'online'}>")


async def open_meter(evse_id: int, *, emit: Emit, model: str, port: str, device_id: int,
                     baudrate: int = 9600, timeout_s: float = 0.3, parity: str = "N",
                     stopbits: int = 1, retries: int = 1, offline_after: int = 3,
                     poll_interval_s: float = 1.0) -> ModbusMeter:
    """Build the meter of one ``[evse.meter]`` table (driver "modbus"), sharing the bus of its port.

    UnknownMeterModel for a model without a register map; HalStartError for
    a device id already used on the line or conflicting serial settings.
    """
    register_map = load_register_map(model)
    bus = await open_bus(port, baudrate=baudrate, parity=parity, stopbits=stopbits)
    return ModbusMeter(evse_id, emit=emit, bus=bus, device_id=device_id, register_map=register_map,
                       timeout_s=timeout_s, retries=retries, offline_after=offline_after,
                       poll_interval_s=poll_interval_s)
