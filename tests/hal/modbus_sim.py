"""Real Modbus RTU frames for the meter tests: a socat pty pair and a pymodbus RTU server playing meters.

``PtyPair`` joins two ptys with socat: the driver opens ``bus_port``, the
simulated meters sit on ``meter_port``. ``MeterSim`` runs pymodbus' RTU
server there with one simulated device per device id, its registers filled
from real-world values by ``encode_reading`` (the inverse of a register map,
written with pymodbus' own converters so it checks our struct-based decoder
rather than mirroring it).

Run as a script to serve meters from a separate process (for CPU figures):
``python -m tests.hal.modbus_sim PORT MODEL[:ID] ...``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shutil
import subprocess
import time
from pathlib import Path

from pymodbus.client import ModbusSerialClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.meters import Field, RegisterMap, load_register_map

_DATATYPE = ModbusSerialClient.DATATYPE
_PYMODBUS_TYPES = {
    "int16": _DATATYPE.INT16, "uint16": _DATATYPE.UINT16, "int32": _DATATYPE.INT32,
    "uint32": _DATATYPE.UINT32, "int64": _DATATYPE.INT64, "uint64": _DATATYPE.UINT64,
    "float32": _DATATYPE.FLOAT32, "float64": _DATATYPE.FLOAT64,
}
# A typical reading while charging at 7.2 kW on three phases.
DEFAULT_READING = {
    "energy_Wh": 12_345_670.0,
    "power_W": 7200.0,
    "voltage_V": (230.1, 229.8, 231.4),
    "current_A": (10.43, 10.44, 10.38),
}


def encode_field(register_map: RegisterMap, field: Field, value: float) -> list[int]:
    """The registers a meter of this model holds for ``value`` (in our units) at ``field``."""
    raw = value * field.divisor / field.multiplier
    if not field.data_type.startswith("float"):
        raw = round(raw)
    registers = ModbusSerialClient.convert_to_registers(
        raw, _PYMODBUS_TYPES[field.data_type], word_order=register_map.word_order)
    if register_map.byte_order == "little":
        registers = [((r & 0xFF) << 8) | (r >> 8) for r in registers]
    return registers


def encode_reading(register_map: RegisterMap, *, energy_Wh: float, power_W: float,
                   voltage_V, current_A) -> dict[int, dict[int, int]]:
    """Register image {function code: {address: value}} of a meter showing these values."""
    fc_of = {block.start: block.function_code for block in register_map.blocks}
    pairs = [(register_map.energy_import_Wh, energy_Wh), (register_map.power_W, power_W),
             *zip(register_map.voltage_V, voltage_V, strict=True),
             *zip(register_map.current_A, current_A, strict=True)]
    image: dict[int, dict[int, int]] = {3: {}, 4: {}}
    for field, value in pairs:
        for i, register in enumerate(encode_field(register_map, field, value)):
            image[fc_of[field.block]][field.address + i] = register
    return image


def reading_for(register_map: RegisterMap, **values) -> dict:
    """DEFAULT_READING trimmed to the model's phases, with ``values`` overriding."""
    reading = dict(DEFAULT_READING)
    phases = register_map.phases
    reading["voltage_V"] = reading["voltage_V"][:phases]
    reading["current_A"] = reading["current_A"][:phases]
    reading.update(values)
    return reading


class PtyPair:
    """Two ptys joined by socat: the driver opens ``bus_port``, the meters listen on ``meter_port``."""

    def __init__(self, directory: Path) -> None:
        self.meter_port = str(directory / "meter")
        self.bus_port = str(directory / "bus")
        self._log = directory / "socat.log"
        self._process: subprocess.Popen | None = None

    async def start(self, *, timeout_s: float = 5.0) -> None:
        """Start socat and wait until both pty links exist."""
        if shutil.which("socat") is None:
            raise RuntimeError("socat is not installed (make system-deps installs it)")
        with open(self._log, "ab") as log_file:
            self._process = subprocess.Popen(
                ["socat", "-d", "-d", f"pty,raw,echo=0,link={self.meter_port}",
                 f"pty,raw,echo=0,link={self.bus_port}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file)
        deadline = time.monotonic() + timeout_s
        while not (os.path.exists(self.meter_port) and os.path.exists(self.bus_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat did not create the ptys: {self._log.read_text()[-500:]}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop socat: both ptys disappear, as when a USB adapter is unplugged."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        while process.poll() is None:
            await asyncio.sleep(0.01)
        for link in (self.meter_port, self.bus_port):
            if os.path.islink(link):
                os.unlink(link)

    def write_noise(self, data: bytes) -> None:
        """Write bytes into the meter end now: they reach the driver as line noise."""
        fd = os.open(self.meter_port, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        state = "running" if self._process and self._process.poll() is None else "stopped"
        return f"<PtyPair {self.bus_port} <-> {self.meter_port} {state}>"


class MeterSim:
    """pymodbus RTU server on ``port`` playing one meter per device id (``meters``: id -> map).

    Observable: ``requests`` lists (monotonic time, device id, function code,
    address, count) of every read served. Drivable: ``set_reading``,
    ``set_registers``, ``delay_s`` (answer late), ``delays`` (one delay per next
    request, for a meter whose answer time wanders), ``exception`` (answer
    with an exception code) and ``garbage_before_answer`` (bytes sent just
    before the next answers, as noise on the line while the meter talks).
    """

    def __init__(self, port: str, *, meters: dict[int, RegisterMap], baudrate: int = 115200) -> None:
        self.port = port
        self.baudrate = baudrate
        self.meters = dict(meters)
        self.images = {device_id: {3: {}, 4: {}} for device_id in meters}
        self.requests: list[tuple[float, int, int, int, int]] = []
        self.delay_s = 0.0
        self.delays: list[float] = []
        self.exception: ExcCodes | None = None
        self.garbage_before_answer: list[bytes] = []
        self._server: ModbusSerialServer | None = None
        for device_id, register_map in meters.items():
            self.set_reading(device_id, **reading_for(register_map))

    def set_reading(self, device_id: int, **values) -> None:
        """Show these real-world values (energy_Wh, power_W, voltage_V, current_A) from now on."""
        register_map = self.meters[device_id]
        image = encode_reading(register_map, **reading_for(register_map, **values))
        for fc, registers in image.items():
            self.images[device_id][fc].update(registers)

    def set_registers(self, device_id: int, function_code: int, address: int, values: list[int]) -> None:
        """Overwrite raw registers (to serve values no encoder would produce, e.g. NaN)."""
        for i, value in enumerate(values):
            self.images[device_id][function_code][address + i] = value

    async def start(self) -> None:
        """Open the port and serve (a fresh server each time, like a meter powering up)."""
        devices = [self._device(device_id, register_map) for device_id, register_map in self.meters.items()]
        self._server = ModbusSerialServer(devices, port=self.port, baudrate=self.baudrate,
                                          trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop answering and close the port (a meter losing power)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    def _device(self, device_id: int, register_map: RegisterMap) -> SimDevice:
        def blocks_of(fc: int) -> list[SimData]:
            found = [SimData(block.start, count=block.count, values=0, datatype=DataType.REGISTERS)
                     for block in register_map.blocks if block.function_code == fc]
            return found or [SimData(0, values=0, datatype=DataType.REGISTERS)]

        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return SimDevice(device_id, simdata=(bits, list(bits), blocks_of(3), blocks_of(4)),
                         action=functools.partial(self._serve, device_id))

    async def _serve(self, device_id: int, function_code: int, start_address: int, address: int,
                     count: int, registers: list[int], _set_values) -> ExcCodes | None:
        self.requests.append((time.monotonic(), device_id, function_code, address, count))
        delay = self.delays.pop(0) if self.delays else self.delay_s
        if delay:
            await asyncio.sleep(delay)
        if self.exception is not None:
            return self.exception
        image = self.images[device_id].get(function_code, {})
        for i in range(address, address + count):
            registers[i - start_address] = image.get(i, 0)
        return None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending and self.garbage_before_answer:
            return self.garbage_before_answer.pop(0) + data
        return data

    def __repr__(self) -> str:
        state = "serving" if self._server is not None else "stopped"
        return f"<MeterSim {self.port} ids={sorted(self.meters)} {state} requests={len(self.requests)}>"


async def _serve_forever(port: str, specs: list[str]) -> None:
    meters = {}
    for spec in specs:
        model, _, device_id = spec.partition(":")
        meters[int(device_id or 1)] = load_register_map(model)
    sim = MeterSim(port, meters=meters)
    await sim.start()
    await asyncio.Event().wait()


def main() -> None:
    """Serve simulated meters on a port until killed (the benchmark's far end)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("port")
    parser.add_argument("meters", nargs="+", metavar="MODEL[:ID]")
    args = parser.parse_args()
    asyncio.run(_serve_forever(args.port, args.meters))


if __name__ == "__main__":
    main()
