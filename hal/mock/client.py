"""Client of the mock HAL control socket, and the ``ocpp-agent sim`` command line.

Synchronous on purpose: ``sim`` is a short-lived command with no event loop.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import time
from pathlib import Path

from hal.errors import ControlError, ControlProtocolError, ControlTimeout, ControlUnreachable

USAGE = """\
usage: ocpp-agent sim COMMAND ARGS...

  plug EVSE                 cable connected (pilot state B)
  unplug EVSE               cable removed (pilot state A)
  ev EVSE charge|pause      the EV requests energy (C) / stops requesting (B)
  tap ID_TOKEN [--evse N]   present an RFID card (to EVSE N's reader)
  power EVSE WATTS          power the EV draws while the contactor is closed
  fault EVSE NAME           inject a fault: contactor-welded, lock-failure,
                            meter-offline, rcd-trip, reader-offline
  clear EVSE NAME           clear it
  external-limit on|off     the external limit contact (ripple control / energy
                            manager, [hal.external_limit]) closes / opens
  state                     the simulated hardware and the agent's status

Prints the agent's JSON answer. Exit 0 on success, 1 if the agent answered
an error (or the command is malformed), 2 if the agent cannot be reached.
"""

EXIT_OK, EXIT_ERROR, EXIT_UNREACHABLE = 0, 1, 2


class UsageError(ValueError):
    """The ``sim`` command line does not follow the grammar."""


def request(path: Path | str, obj: dict, *, timeout: float = 5.0) -> dict:
    """Send one request to the control socket at ``path`` and return the answer.

    Raises ControlUnreachable (a ConnectionError) if the socket is missing or
    refuses, ControlTimeout if no answer comes within ``timeout`` seconds, and
    ControlProtocolError if the answer is not one JSON object.
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        _connect(sock, str(path))
        try:
            sock.sendall(json.dumps(obj).encode("utf-8") + b"\n")
            line = _read_line(sock, deadline)
        except ControlError:
            raise
        except TimeoutError as exc:
            raise ControlTimeout(f"the agent at {path} did not answer within {timeout:g} s") from exc
        except OSError as exc:
            raise ControlUnreachable(f"connection to the agent at {path} failed: {exc}") from exc
    return _decode(line)


def _connect(sock: socket.socket, path: str) -> None:
    try:
        sock.connect(path)
    except TimeoutError as exc:
        raise ControlTimeout(f"the agent at {path} did not accept the connection") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ControlUnreachable(
            f"cannot reach the agent at {path}: {reason} "
            f'(is it running, with hal.backend = "mock"?)') from exc


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise ControlProtocolError("the agent closed the connection without an answer")
        chunks.append(chunk)
        if b"\n" in chunk:
            return b"".join(chunks).split(b"\n", 1)[0]


def _decode(line: bytes) -> dict:
    try:
        answer = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlProtocolError(f"the agent's answer is not JSON: {line[:200]!r}") from exc
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise ControlProtocolError(f'the agent\'s answer has no "ok": {line[:200]!r}')
    return answer


def run_sim(argv: list[str], *, socket_path: Path | str, timeout: float = 5.0) -> int:
    """Run ``ocpp-agent sim ARGV...`` against ``socket_path``: print the answer, return the exit code."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        (sys.stdout if argv else sys.stderr).write(USAGE)
        return EXIT_OK if argv else EXIT_ERROR
    try:
        obj = parse_sim_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"ocpp-agent sim: {exc}\n\n{USAGE}")
        return EXIT_ERROR
    try:
        answer = request(socket_path, obj, timeout=timeout)
    except ControlError as exc:
        sys.stderr.write(f"ocpp-agent sim: {exc}\n")
        return EXIT_UNREACHABLE
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(answer, indent=indent) + "\n")
    return EXIT_OK if answer["ok"] else EXIT_ERROR


def parse_sim_args(argv: list[str]) -> dict:
    """Turn ``sim`` arguments into a control request; UsageError if they do not fit the grammar."""
    cmd, args = argv[0], list(argv[1:])
    if cmd in ("plug", "unplug"):
        (evse,) = _args(cmd, args, "EVSE")
        return {"cmd": cmd, "evse": _int(evse, "EVSE")}
    if cmd == "ev":
        evse, mode = _args(cmd, args, "EVSE", "charge|pause")
        if mode not in ("charge", "pause"):
            raise UsageError(f"ev: expected 'charge' or 'pause', not {mode!r}")
        return {"cmd": "ev", "evse": _int(evse, "EVSE"), "charge": mode == "charge"}
    if cmd == "tap":
        return _parse_tap(args)
    if cmd == "power":
        evse, watts = _args(cmd, args, "EVSE", "WATTS")
        return {"cmd": "power", "evse": _int(evse, "EVSE"), "watts": _number(watts, "WATTS")}
    if cmd in ("fault", "clear"):
        evse, name = _args(cmd, args, "EVSE", "NAME")
        return {"cmd": cmd, "evse": _int(evse, "EVSE"), "name": name}
    if cmd == "external-limit":
        (mode,) = _args(cmd, args, "on|off")
        if mode not in ("on", "off"):
            raise UsageError(f"external-limit: expected 'on' or 'off', not {mode!r}")
        return {"cmd": "external_limit", "active": mode == "on"}
    if cmd == "state":
        _args(cmd, args)
        return {"cmd": "state"}
    raise UsageError(f"unknown command {cmd!r}")


def _parse_tap(args: list[str]) -> dict:
    evse = None
    rest = []
    while args:
        arg = args.pop(0)
        if arg == "--evse":
            if not args:
                raise UsageError("tap: --evse needs a number")
            evse = args.pop(0)
        elif arg.startswith("--evse="):
            evse = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    (token,) = _args("tap", rest, "ID_TOKEN")
    obj: dict = {"cmd": "tap", "id_token": token}
    if evse is not None:
        obj["evse"] = _int(evse, "--evse")
    return obj


def _args(cmd: str, args: list[str], *names: str) -> list[str]:
    if len(args) != len(names):
        expected = " ".join((cmd, *names))
        raise UsageError(f"{cmd}: expected '{expected}', got {len(args)} argument(s)")
    return args


def _int(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise UsageError(f"{what} must be an integer, not {text!r}") from None


def _number(text: str, what: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{what} must be a finite number, not {text!r}")
    return int(value) if value.is_integer() else value
