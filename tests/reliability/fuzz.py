"""Protocol fuzzing: hypothesis strategies of hostile frames, and the hostile CSMS that sends them.

- ``frames(version)``: a hypothesis strategy of ``Frame``s: invalid JSON, valid JSON that is not
  an array, wrong message type ids, unreadable message ids, wrong arity, non-object payloads,
  unknown and unsupported actions, schema mutations of every handled action (missing fields,
  wrong types, unknown fields, values out of range, huge strings and arrays, bad date-times, deep
  nesting), replies nobody asked for, and some valid requests that must succeed.
- ``HostileCsms``: a websockets server that answers the agent's own CALLs minimally and sends it
  whatever the test asks, collecting the agent's answers in order.

What the agent must answer is the oracle's business (``tests.reliability.oracle``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache

from hypothesis import assume
from hypothesis import strategies as st

from tests.reliability.oracle import handled_actions, known_actions, schema_problems, validator

#: Requests the CSMS may send that change nothing lasting, so valid ones can be sent as they are.
SAFE = {
    "1.6": frozenset({"GetConfiguration", "ClearCache", "DataTransfer", "GetLocalListVersion",
                      "GetCompositeSchedule", "GetInstalledCertificateIds"}),
    "2.0.1": frozenset({"GetVariables", "ClearCache", "DataTransfer", "GetLocalListVersion", "GetCompositeSchedule",
                        "GetInstalledCertificateIds", "GetTransactionStatus", "GetBaseReport", "GetReport",
                        "GetChargingProfiles"}),
}
#: Deeper frames are beyond what Python's JSON parser takes; the agent's answer to those is a
#: known bug with its own test (test_fuzzing_frame_nested_beyond_the_json_parser_gets_a_callerror).
MAX_FUZZ_DEPTH = 400


# ------------------------------------------------------------------ valid payloads from the schemas

def _deref(root: dict, node: dict) -> dict:
    """Follow ``{"$ref": "#/definitions/X"}`` within ``root``."""
    while "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def minimal_value(root: dict, node: dict):
    """The simplest value ``node`` (a schema) accepts: required fields only, first enum value, …"""
    node = _deref(root, node)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if "enum" in node:
        return node["enum"][0]
    if kind == "object":
        return {key: minimal_value(root, node["properties"][key]) for key in node.get("required", [])}
    if kind == "array":
        return [minimal_value(root, node.get("items", {"type": "string"}))
                for _ in range(max(1, node.get("minItems", 1)))]
    if kind == "string":
        if node.get("format") == "date-time":
            return "2026-01-01T00:00:00Z"
        return "A" * max(1, node.get("minLength", 1))
    if kind in ("integer", "number"):
        low = node.get("minimum", 1)
        return int(low) if kind == "integer" else low
    if kind == "boolean":
        return True
    return "A"


@cache
def base_payload(version: str, action: str) -> dict | None:
    """A minimal valid request for ``action``, or None if the schema defeats the simple builder."""
    schema = validator(version, action).schema
    payload = minimal_value(schema, schema)
    return payload if not schema_problems(version, action, payload) else None


def _leaves(root: dict, node: dict, value, path=()):
    """(path, schema node, value) of every field in ``value``, depth first."""
    node = _deref(root, node)
    if isinstance(value, dict):
        for key, child in value.items():
            sub = node.get("properties", {}).get(key, {})
            yield path + (key,), _deref(root, sub), child
            yield from _leaves(root, sub, child, path + (key,))
    elif isinstance(value, list) and value:
        yield from _leaves(root, node.get("items", {}), value[0], path + (0,))


def _set(payload, path, value):
    target = payload
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _delete(payload, path):
    target = payload
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]


# ------------------------------------------------------------------ the strategies

@dataclass(frozen=True)
class Frame:
    """One hostile frame: its category (for the figures) and its text."""

    category: str
    text: str


_ids = st.one_of(st.uuids().map(str), st.text(st.characters(codec="ascii", exclude_categories=("Cc",)),
                                               min_size=1, max_size=36))
_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=False,
                          allow_infinity=False), st.text(max_size=30))
_json = st.recursive(_json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                     max_leaves=12)
_wrong_type_pool = (12, "x", True, None, [], {}, 1.5, [1, "a"], {"a": 1})


def _nested(depth: int, leaf="x") -> str:
    return "[" * depth + json.dumps(leaf) + "]" * depth


def _huge_text(size: int, char: str) -> str:
    return char * size


_huge = st.builds(_huge_text, st.integers(1_000, 1_000_000), st.sampled_from(["x", "é", "\u20ac", "A1"]))


@st.composite
def _invalid_json(draw):
    shape = draw(st.sampled_from(["truncated", "garbage", "trailing", "single_quotes", "nan"]))
    valid = json.dumps([2, draw(_ids), "Heartbeat", {}])
    if shape == "truncated":
        return valid[: draw(st.integers(1, len(valid) - 1))]
    if shape == "trailing":
        return valid + draw(st.sampled_from([",", "]", "}", " x", "[]"]))
    if shape == "single_quotes":
        return valid.replace('"', "'")
    if shape == "nan":
        return "[2, \"a\", \"DataTransfer\", {\"vendorId\": \"v\", \"data\": Infinity x}]"
    text = draw(st.text(min_size=1, max_size=200))
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return text
    return text + "{"


@st.composite
def _not_an_array(draw):
    value = draw(st.one_of(_json_scalars, st.dictionaries(st.text(max_size=10), _json, max_size=4),
                           st.just([])))
    return json.dumps(value)


@st.composite
def _wrong_message_type(draw):
    kind = draw(st.one_of(st.integers(-10, 10).filter(lambda n: n not in (2, 3, 4)), st.integers(5, 2**40),
                          st.sampled_from(["2", "3", "CALL", 2.5, None, True, False, [2], {"t": 2}])))
    rest = draw(st.sampled_from([[], [draw(_ids)], [draw(_ids), "Heartbeat", {}], [draw(_ids), {}]]))
    return json.dumps([kind, *rest])


@st.composite
def _bad_message_id(draw):
    message_id = draw(st.one_of(st.just(""), st.integers(), st.none(), st.lists(st.integers(), max_size=2),
                                st.text(min_size=37, max_size=100), _huge))
    return json.dumps([2, message_id, draw(st.sampled_from(["Heartbeat", "ClearCache", "Reset"])), {}])


@st.composite
def _wrong_arity(draw):
    message_id = draw(_ids)
    shape = draw(st.sampled_from(["short", "long", "action_type"]))
    if shape == "short":
        return json.dumps([2, message_id] + draw(st.sampled_from([[], ["ClearCache"]])))
    if shape == "long":
        extra = draw(st.one_of(st.lists(_json, min_size=1, max_size=3),
                               st.integers(1_000, 100_000).map(lambda n: [0] * n)))
        return json.dumps([2, message_id, "ClearCache", {}, *extra])
    return json.dumps([2, message_id, draw(st.one_of(st.integers(), st.none(), st.just([]), st.just({}))), {}])


@st.composite
def _payload_not_object(draw, version):
    action = draw(st.sampled_from(sorted(handled_actions(version)) + ["MakeCoffee"]))
    payload = draw(st.one_of(_json_scalars, st.lists(_json, max_size=3)))
    return json.dumps([2, draw(_ids), action, payload])


@st.composite
def _unknown_action(draw, version):
    action = draw(st.one_of(st.text(min_size=1, max_size=40), _huge.map(lambda s: "A" + s),
                            st.sampled_from(["heartbeat", "BOOTNOTIFICATION", "Reset ", " Reset", "Reset\x00",
                                             "GetVariables" if version == "1.6" else "GetConfiguration"])))
    assume(action not in known_actions(version))
    return json.dumps([2, draw(_ids), action, draw(st.dictionaries(st.text(max_size=8), _json, max_size=3))])


@st.composite
def _unsupported_action(draw, version):
    unsupported = sorted(known_actions(version) - handled_actions(version))
    action = draw(st.sampled_from(unsupported))
    return json.dumps([2, draw(_ids), action, draw(st.dictionaries(st.text(max_size=8), _json, max_size=3))])


MUTATIONS = ("missing", "wrong_type", "unknown_field", "bad_enum", "huge_string", "huge_array", "bad_date_time",
             "out_of_range", "deep_nesting")
#: Mutations whose result is invalid whatever else the schema says: the only ones tried on requests
#: that would change the station if accepted (Reset, RemoteStart, ChangeConfiguration, …).
ROBUST = ("missing", "wrong_type", "unknown_field")


@st.composite
def _mutated_call(draw, version):
    candidates = sorted(a for a in handled_actions(version) if base_payload(version, a) is not None)
    action = draw(st.sampled_from(candidates))
    safe = action in SAFE[version]
    mutation = draw(st.sampled_from(MUTATIONS if safe else ROBUST))
    schema = validator(version, action).schema
    payload = json.loads(json.dumps(base_payload(version, action)))
    leaves = list(_leaves(schema, schema, payload))
    _mutate(draw, mutation, schema, payload, leaves)
    if schema_problems(version, action, payload) or safe:
        return json.dumps([2, draw(_ids), action, payload])
    assume(False)  # still valid and not harmless: never send it


def _mutate(draw, mutation, schema, payload, leaves) -> None:
    if mutation == "missing":
        required = [(p, n) for p, n, _ in leaves if p[-1] in _parent_required(schema, payload, p)]
        assume(required)
        _delete(payload, draw(st.sampled_from(required))[0])
    elif mutation == "wrong_type":
        assume(leaves)
        path, node, value = draw(st.sampled_from(leaves))
        _set(payload, path, draw(st.sampled_from([v for v in _wrong_type_pool if type(v) is not type(value)])))
    elif mutation == "unknown_field":
        objects = [()] + [p for p, _, v in leaves if isinstance(v, dict)]
        where = draw(st.sampled_from(objects))
        name = draw(st.sampled_from(["unexpectedField", "Extra", "custom_data", "x" * 50]))
        _set(payload, where + (name,), draw(_json))
    else:
        _mutate_value(draw, mutation, payload, leaves)


def _mutate_value(draw, mutation, payload, leaves) -> None:
    pick = {
        "bad_enum": lambda n, v: "enum" in n,
        "huge_string": lambda n, v: isinstance(v, str),
        "huge_array": lambda n, v: isinstance(v, list),
        "bad_date_time": lambda n, v: n.get("format") == "date-time",
        "out_of_range": lambda n, v: isinstance(v, int) and not isinstance(v, bool),
        "deep_nesting": lambda n, v: True,
    }[mutation]
    fields = [(p, n, v) for p, n, v in leaves if pick(n, v)]
    assume(fields)
    path, node, value = draw(st.sampled_from(fields))
    if mutation == "bad_enum":
        new = draw(st.sampled_from(["", "Bogus", str(node["enum"][0]).lower(), str(node["enum"][0]) + " "]))
    elif mutation == "huge_string":
        new = draw(_huge)
    elif mutation == "huge_array":
        new = value * draw(st.integers(100, 20_000))
    elif mutation == "bad_date_time":
        new = draw(st.sampled_from(["tomorrow", "", "2026-13-45T10:00:00Z", "2026-01-01 10:00:00",
                                    "2026-01-01T25:00:00Z", "1700000000", "2026-01-01T10:00:00+25:00"]))
    elif mutation == "out_of_range":
        new = draw(st.sampled_from([-1, -(2**31), 2**31, 2**63, 10**30, node.get("minimum", 0) - 1]))
    else:
        new = json.loads(_nested(draw(st.integers(2, MAX_FUZZ_DEPTH))))
    _set(payload, path, new)


def _parent_required(schema, payload, path) -> list[str]:
    node = schema
    for part in path[:-1]:
        node = _deref(schema, node)
        node = node.get("items", {}) if isinstance(part, int) else node.get("properties", {}).get(part, {})
    return _deref(schema, node).get("required", [])


@st.composite
def _valid_call(draw, version):
    action = draw(st.sampled_from(sorted(a for a in SAFE[version] & handled_actions(version)
                                         if base_payload(version, a) is not None)))
    return json.dumps([2, draw(_ids), action, base_payload(version, action)])


@st.composite
def _stray_reply(draw):
    shape = draw(st.sampled_from(["result", "error", "malformed"]))
    if shape == "result":
        return json.dumps([3, draw(_ids), draw(st.dictionaries(st.text(max_size=8), _json, max_size=3))])
    if shape == "error":
        return json.dumps([4, draw(_ids), draw(st.sampled_from(["GenericError", "NotImplemented", "x"])),
                           draw(st.text(max_size=30)), {}])
    return json.dumps(draw(st.sampled_from([[3], [4], [3, 5, {}], [4, "a"], [3, "a", []], [4, None, 1, 2, 3]])))


@st.composite
def _deep_frame(draw):
    depth = draw(st.integers(10, MAX_FUZZ_DEPTH))
    shape = draw(st.sampled_from(["frame", "payload", "id"]))
    if shape == "frame":
        return _nested(depth)
    if shape == "payload":
        return f'[2,"{uuid.uuid4()}","DataTransfer",{{"vendorId":"v","data":{_nested(depth)}}}]'
    return f'[2,{_nested(depth)},"Heartbeat",{{}}]'


def frames(version: str):
    """Hostile frames for an agent speaking ``version``, each tagged with its category."""
    categories = {
        "invalid_json": _invalid_json(),
        "not_an_array": _not_an_array(),
        "wrong_message_type": _wrong_message_type(),
        "bad_message_id": _bad_message_id(),
        "wrong_arity": _wrong_arity(),
        "payload_not_object": _payload_not_object(version),
        "unknown_action": _unknown_action(version),
        "unsupported_action": _unsupported_action(version),
        "schema_mutation": _mutated_call(version),
        "deep_nesting": _deep_frame(),
        "stray_reply": _stray_reply(),
        "valid_request": _valid_call(version),
    }
    weighted = [(name, 3 if name == "schema_mutation" else 1) for name in categories]
    return st.one_of(*[categories[name].map(lambda text, n=name: Frame(n, text))
                       for name, weight in weighted for _ in range(weight)])


# ------------------------------------------------------------------ the hostile CSMS

def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _answer(version: str, action: str) -> dict:
    """A minimal valid answer to the station's own CALLs."""
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": _now(), "interval": 300}
    if action == "Heartbeat":
        return {"currentTime": _now()}
    if action == "Authorize":
        return {"idTagInfo": {"status": "Accepted"}} if version == "1.6" else {"idTokenInfo": {"status": "Accepted"}}
    if action == "StartTransaction":
        return {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
    if action == "DataTransfer":
        return {"status": "UnknownVendorId"}
    return {}


class HostileCsms:
    """A websockets server for one station: answers its CALLs, sends it anything, queues its answers."""

    def __init__(self, version: str):
        self.version = version
        self.subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
        self.connection = None
        self.connections = 0
        self.drops = 0
        self.calls: list[str] = []  # actions of the station's own CALLs
        self.port = 0
        self._server = None
        self._stopping = False
        self.answers: asyncio.Queue = asyncio.Queue()
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", 0, subprotocols=[self.subprotocol],
                                   ping_interval=None, max_size=None)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the station's connection and stop listening (the port is free again)."""
        self._stopping = True
        self._server.close()
        await self._server.wait_closed()

    async def send(self, text: str) -> None:
        """Send one frame to the connected station."""
        await self.connection.send(text)

    async def _handle(self, websocket) -> None:
        self.connections += 1
        self.connection = websocket
        self.disconnected.clear()
        self.connected.set()
        try:
            async for text in websocket:
                await self._received(websocket, text)
        except Exception:
            pass  # the connection ended; counted below
        finally:
            if self.connection is websocket:
                self.connection = None
                self.connected.clear()
                self.disconnected.set()
                if not self._stopping:
                    self.drops += 1

    async def _received(self, websocket, text) -> None:
        frame = json.loads(text)
        if frame[0] == 2:
            self.calls.append(frame[2])
            await websocket.send(json.dumps([3, frame[1], _answer(self.version, frame[2])]))
        else:
            self.answers.put_nowait(frame)
