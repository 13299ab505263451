"""agent.protocol.common.fastschema must agree with jsonschema's Draft4Validator, exactly.

The fast check may only ever say "valid" where jsonschema does (rpc then skips
jsonschema): a wrong True would let an invalid payload through. We check every
keyword by hand, then run a differential test over every OCPP 1.6, 2.0.1 and 2.1
schema with hypothesis-generated payloads built from the schema itself (valid
ones, and ones with one or many mistakes). The default run keeps a few examples
per schema; ``make test-slow`` (marker ``slow``) runs many more, with big arrays.
"""

from __future__ import annotations

import decimal
import json
import math
import random
import time
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import ocpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from agent.protocol.common import fastschema, rpc

D = decimal.Decimal
SCHEMA_DIRS = {"1.6": Path(ocpp.__file__).parent / "v16" / "schemas",
               "2.0.1": Path(ocpp.__file__).parent / "v201" / "schemas",
               "2.1": Path(ocpp.__file__).parent / "v21" / "schemas"}
SCHEMA_FILES = [(version, path) for version, folder in SCHEMA_DIRS.items() for path in sorted(folder.glob("*.json"))]


def key_of(version: str, path: Path) -> tuple[str, int, str]:
    """(version, message type, action) of a schema file, as rpc.validate is called."""
    name = path.stem
    if name.endswith("Response"):
        return version, 3, name[: -len("Response")]
    if version == "2.0.1":
        assert name.endswith("Request"), name
        return version, 2, name[: -len("Request")]
    if version == "2.1":  # its one SEND (NotifyPeriodicEventStream) has neither suffix
        return (version, 2, name[: -len("Request")]) if name.endswith("Request") else (version, rpc.SEND, name)
    return version, 2, name


# The differential tests take 2.1's new schemas only: the ones 2.1 shares with 2.0.1 (wider, same keywords)
# compile like the rest (test_every_ocpp_schema_compiles), and the default suite must stay quick.
_IN_201 = {path.name for path in SCHEMA_DIRS["2.0.1"].glob("*.json")}
KEYS = [key_of(version, path) for version, path in SCHEMA_FILES if version != "2.1" or path.name not in _IN_201]


def key_id(key: tuple[str, int, str]) -> str:
    """A test id such as ``2.0.1-Reset-req``."""
    return f"{key[0]}-{key[2]}-{ {2: 'req', 3: 'conf'}.get(key[1], 'send')}"


def both(schema, instance):
    """(fast verdict, jsonschema verdict) with rpc's format checker; the schema must compile."""
    check = fastschema.compile(schema, rpc._FORMATS)
    assert check is not None, schema
    return check(instance), Draft4Validator(schema, format_checker=rpc._FORMATS).is_valid(instance)


# ------------------------------------------------------------------ fixed cases, keyword by keyword

OBJ = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
DEFS = {"definitions": {"A": {"type": "integer"}, "S": {"type": "string"}},
        "type": "object", "properties": {"a": {"$ref": "#/definitions/A"}, "s": {"$ref": "#/definitions/S", "maxLength": 1}}}
RECURSIVE = {"definitions": {"N": {"type": "object", "properties": {"next": {"$ref": "#/definitions/N"}},
                                   "additionalProperties": False}}, "$ref": "#/definitions/N"}
ANNOTATED = {"$schema": "http://json-schema.org/draft-06/schema#", "$id": "urn:x", "javaType": "X", "comment": "c",
             "description": "d", "title": "t", "default": "z", "type": "string"}

CASES = [
    # type: bool is not a number, 1.0 is not a Draft 4 integer, Decimal is a number
    ({"type": "integer"}, 1, True), ({"type": "integer"}, 2**70, True), ({"type": "integer"}, -3, True),
    ({"type": "integer"}, True, False), ({"type": "integer"}, 1.0, False), ({"type": "integer"}, 1.5, False),
    ({"type": "integer"}, "1", False), ({"type": "integer"}, None, False), ({"type": "integer"}, D("1"), False),
    ({"type": "number"}, 1, True), ({"type": "number"}, 1.5, True), ({"type": "number"}, D("1.5"), True),
    ({"type": "number"}, Fraction(1, 3), True), ({"type": "number"}, float("nan"), True),
    ({"type": "number"}, True, False), ({"type": "number"}, False, False), ({"type": "number"}, "1", False),
    ({"type": "string"}, "", True), ({"type": "string"}, b"x", False), ({"type": "string"}, 1, False),
    ({"type": "boolean"}, True, True), ({"type": "boolean"}, 1, False), ({"type": "boolean"}, 0, False),
    ({"type": "null"}, None, True), ({"type": "null"}, 0, False), ({"type": "null"}, "", False),
    ({"type": "array"}, [], True), ({"type": "array"}, (), False), ({"type": "array"}, {}, False),
    ({"type": "object"}, {}, True), ({"type": "object"}, [], False), ({"type": "object"}, None, False),
    ({"type": ["string", "integer"]}, "a", True), ({"type": ["string", "integer"]}, 1, True),
    ({"type": ["string", "integer"]}, True, False), ({"type": ["string", "integer"]}, 1.0, False),
    ({"type": ["null", "object"], "required": ["a"]}, None, True),
    ({"type": ["null", "object"], "required": ["a"]}, {}, False),
    # keywords apply only to their own type when there is no type
    ({"maxLength": 2}, 12345, True), ({"maxLength": 2}, "abc", False), ({"maxLength": 2}, "ab", True),
    ({"minimum": 0}, "-1", True), ({"minimum": 0}, -1, False), ({"minItems": 1}, {}, True),
    ({"minItems": 1}, [], False), ({"required": ["a"]}, [], True), ({"required": ["a"]}, {}, False),
    ({"properties": {"a": {"type": "string"}}}, "x", True), ({"properties": {"a": {"type": "string"}}}, {"a": 1}, False),
    ({}, {"anything": [1, None]}, True), ({"description": "only words"}, 3, True),
    # properties, required, additionalProperties
    (OBJ, {"a": 1}, True), (OBJ, {}, False), (OBJ, {"a": 1, "b": 2}, False), (OBJ, {"a": True}, False),
    (OBJ, {"a": 1.0}, False), (OBJ, {"A": 1}, False), (OBJ, [("a", 1)], False),
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, {"b": "x"}, True),
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, {"a": "x"}, False),
    ({"type": "object", "additionalProperties": False}, {}, True),
    ({"type": "object", "additionalProperties": False}, {"a": 1}, False),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": False}, {"a": [1]}, True),
    ({"type": "object", "required": ["a", "a", "b"]}, {"a": 1, "b": 2}, True),
    ({"type": "object", "required": ["a", "a", "b"]}, {"b": 2}, False),
    # enum
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, "Accepted", True),
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, "accepted", False),
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, "Accepted ", False),
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, None, False),
    ({"type": "string", "enum": ["A"], "maxLength": 0}, "A", False),
    ({"enum": ["A"]}, "A", True), ({"enum": ["A"]}, 1, False), ({"enum": ["A"]}, ["A"], False),
    ({"enum": ["A"]}, {"A": 1}, False),
    # lengths count code points, as Python's len does
    ({"type": "string", "maxLength": 3}, "abc", True), ({"type": "string", "maxLength": 3}, "abcd", False),
    ({"type": "string", "maxLength": 3}, "\U0001F600" * 3, True),
    ({"type": "string", "maxLength": 3}, "e\u0301e\u0301", False),
    ({"type": "string", "minLength": 2}, "a", False), ({"type": "string", "minLength": 2}, "ab", True),
    ({"type": "string", "minLength": 1, "maxLength": 2}, "", False),
    ({"type": "string", "minLength": 1, "maxLength": 2}, "ab", True),
    # minimum / maximum, NaN passing both as it does in jsonschema
    ({"type": "number", "minimum": 0, "maximum": 100}, 0, True),
    ({"type": "number", "minimum": 0, "maximum": 100}, -0.0, True),
    ({"type": "number", "minimum": 0, "maximum": 100}, -0.1, False),
    ({"type": "number", "minimum": 0, "maximum": 100}, 100, True),
    ({"type": "number", "minimum": 0, "maximum": 100}, 100.0001, False),
    ({"type": "number", "minimum": 0, "maximum": 100}, float("nan"), True),
    ({"type": "number", "minimum": 0, "maximum": 100}, float("inf"), False),
    ({"type": "number", "minimum": 0, "maximum": 100}, float("-inf"), False),
    ({"type": "number", "minimum": D("0.0")}, D("-0.1"), False),
    ({"type": "integer", "minimum": 0}, -1, False), ({"type": "integer", "minimum": 0}, 0, True),
    # multipleOf: binary floats fail 0.1 steps (why rpc uses Decimals there); Decimals pass
    ({"type": "number", "multipleOf": 0.1}, 3, True), ({"type": "number", "multipleOf": 0.1}, 0.5, True),
    ({"type": "number", "multipleOf": 0.1}, 21.4, False), ({"type": "number", "multipleOf": 0.1}, 0.3, False),
    ({"type": "number", "multipleOf": 0.1}, 0.25, False),
    ({"type": "number", "multipleOf": 0.1}, 1e308, False),  # quotient overflows: decided with fractions
    ({"type": "number", "multipleOf": D("0.1")}, D("21.4"), True),
    ({"type": "number", "multipleOf": D("0.1")}, D("21.45"), False),
    ({"type": "number", "multipleOf": D("0.1")}, 3, True),
    ({"type": "integer", "multipleOf": 5}, 10, True), ({"type": "integer", "multipleOf": 5}, 11, False),
    # items, minItems, maxItems; additionalItems means nothing next to an items schema
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}, [], False),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}, [1], True),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}, [1, 2, 3], False),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}, [1, "a"], False),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}, [True], False),
    ({"type": "array", "items": {"type": "integer"}, "additionalItems": False}, [1, 2, 3], True),
    ({"type": "array", "additionalItems": False}, [1, "x"], True),
    ({"type": "array", "items": {"type": "object", "required": ["x"]}}, [{"x": 1}] * 50 + [{}], False),
    # format: rpc's date-time check; formats the checker has no function for check nothing
    ({"type": "string", "format": "date-time"}, "2026-11-21T10:00:00Z", True),
    ({"type": "string", "format": "date-time"}, "2026-11-21T10:00:00.123+02:00", True),
    ({"type": "string", "format": "date-time"}, "2026-11-21", False),
    ({"type": "string", "format": "date-time"}, "2026-11-21 10:00:00", False),
    ({"type": "string", "format": "date-time"}, "2026-13-21T10:00:00Z", False),
    ({"type": "string", "format": "date-time"}, "garbage", False),
    ({"type": "string", "format": "date-time", "maxLength": 5}, "2026-11-21T10:00:00Z", False),
    ({"format": "date-time"}, 5, True), ({"format": "date-time"}, "soon", False),
    ({"type": "string", "format": "uri"}, "not a uri", True),
    # $ref / definitions; Draft 4 ignores $ref's siblings; "$id" is no identifier in Draft 4
    (DEFS, {"a": 1}, True), (DEFS, {"a": "x"}, False), (DEFS, {"s": "long"}, True), (DEFS, {"s": 1}, False),
    (RECURSIVE, {"next": {"next": {}}}, True), (RECURSIVE, {"next": {"x": 1}}, False), (RECURSIVE, [], False),
    ({"definitions": {"A": {"type": "integer"}}, "$ref": "#/definitions/A", "type": "string"}, 1, True),
    (ANNOTATED, "x", True), (ANNOTATED, 1, False),
]


@pytest.mark.parametrize("schema, instance, expected", CASES)
def test_each_keyword_matches_jsonschema(schema, instance, expected):
    fast, slow = both(schema, instance)
    assert slow is expected, "the case's expectation is wrong about jsonschema"
    assert fast is expected


def test_without_a_format_checker_formats_are_not_checked():
    schema = {"type": "string", "format": "date-time"}
    assert fastschema.compile(schema)("garbage") is True
    assert Draft4Validator(schema).is_valid("garbage")


UNSUPPORTED = [
    {"pattern": "^a"}, {"anyOf": [{"type": "string"}]}, {"allOf": []}, {"oneOf": []}, {"not": {}},
    {"type": "number", "minimum": 0, "exclusiveMinimum": True}, {"exclusiveMaximum": True},
    {"id": "urn:x", "type": "string"}, {"items": [{"type": "string"}]}, {"additionalProperties": {"type": "string"}},
    {"patternProperties": {"^a": {}}}, {"$ref": "other.json#/definitions/A"}, {"$ref": "#/definitions/Missing"},
    {"$ref": "#/definitions/a~1b", "definitions": {"a/b": {}}}, {"$ref": 3},
    {"enum": [1, 2]}, {"enum": ["a", None]}, {"enum": []}, {"type": "any"}, {"type": []}, {"type": 3},
    {"maxLength": 1.5}, {"maxLength": -1}, {"minItems": "1"}, {"minimum": "0"}, {"multipleOf": True},
    {"required": "a"}, {"required": [1]}, {"properties": []},
    {"properties": {"a": {"unknownKeyword": 1}}}, {"uniqueItems": True}, {"dependencies": {}},
    {"minProperties": 1}, {"format": 5}, {"type": "object", "properties": {"a": True}},
    True, [], "string",
]


@pytest.mark.parametrize("schema", UNSUPPORTED, ids=repr)
def test_anything_not_understood_is_left_to_jsonschema(schema):
    assert fastschema.compile(schema, rpc._FORMATS) is None


def test_a_check_that_raises_leaves_the_verdict_to_jsonschema(monkeypatch):
    """rpc.validate treats an exception in the fast check as "not known valid", never as valid."""
    key = ("1.6", 2, "ChangeAvailability")
    rpc._validator(*key)

    def broken(payload):
        raise RuntimeError("fast check failed")

    monkeypatch.setitem(rpc._fast_checks, key, broken)
    assert rpc.validate(*key, {"connectorId": 1, "type": "Operative"}) is None
    assert rpc.validate(*key, {"connectorId": 1, "type": "Sideways"})[0] == "property"


@pytest.mark.parametrize("version, path", SCHEMA_FILES, ids=lambda v: getattr(v, "name", v))
def test_every_ocpp_schema_compiles(version, path):
    """Every schema OCPP ships stays on the fast path, parsed with floats or with Decimals."""
    text = path.read_text(encoding="utf-8-sig")
    for parse_float in (float, D):
        assert fastschema.compile(json.loads(text, parse_float=parse_float), rpc._FORMATS) is not None
    assert rpc._validator(*key_of(version, path)) is not None
    assert rpc._fast_checks[key_of(version, path)] is not None


# ------------------------------------------------------------------ payloads generated from the schema

JUNK = [None, True, False, 0, 1, -1, 2**31, 10**30, 1.0, 0.5, -0.0, 1e300, float("nan"), float("inf"),
        float("-inf"), "", "x", "1", "true", "Accepted", [], [None], {}, {"a": 1}]
BAD_DATES = [
    "", "T", "now", "2026-11-21", "2026-11-21 10:00:00Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
    "2026-11-21T25:00:00Z", "2026-11-21T10:00:00+25:00", "2026-11-21t10:00:00z", "21-11-2026T10:00:00Z",
    "2026-11-21T10:00:00ZZ", "2026-11-21T10:00", "2026-11-21T10", "2026-11-21T10:00:00.1234567Z",
    "\uff12026-11-21T10:00:00Z", "2026-11-21T10:00:00 Z",
]
DATE_STYLES = [
    lambda d: d.isoformat(),
    lambda d: d.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda d: d.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    lambda d: d.replace(tzinfo=None).isoformat(timespec="seconds"),
]
CHARS = st.characters(codec="utf-8")
# Hypothesis draws a few leaves per example (its knack for odd text and numbers); a seeded
# Random makes the many structural choices, which would be slow to draw one by one.
POOL = st.fixed_dictionaries({
    "seed": st.integers(0, 2**64 - 1),
    "text": st.lists(st.text(CHARS, max_size=12), min_size=1, max_size=2),
    "char": st.lists(CHARS, min_size=1, max_size=2),
    "int": st.lists(st.integers(), min_size=1, max_size=2),
    "float": st.lists(st.floats(), min_size=1, max_size=2),
    "date": st.lists(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1),
                                  timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30))])),
                     min_size=1, max_size=2),
    "junk": st.lists(st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
        max_leaves=3), max_size=1),
    # valid payloads; exactly one mistake somewhere (the hardest to tell apart); some; many
    "mistakes": st.sampled_from(["none", "one", "one", "few", "many"]),
})


class Payloads:
    """Builds one value for a schema: valid, except at the nodes chosen to be broken."""

    def __init__(self, pool: dict, root: dict, big: bool, only: int = 0):
        self.pool, self.root, self.big = pool, root, big
        self.rng = random.Random(pool["seed"])
        self.rate = {"none": 0, "one": 0, "few": 10, "many": 40}[pool["mistakes"]]
        self.only = only  # break the only-th node that could be broken, and no other
        self.nodes = 0

    def deref(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            node = self.root
            for segment in schema["$ref"][2:].split("/"):
                node = node[segment]
            schema = node
        return schema

    def broken(self, rarer: int = 1) -> bool:
        """Whether to break this node; at the rate, or ``rarer`` times less often."""
        self.nodes += 1
        if self.only:
            return self.nodes == self.only
        return self.rate > 0 and self.rng.randrange(100 * rarer) < self.rate

    def junk(self):
        return self.rng.choice(JUNK + self.pool["junk"])

    def value(self, schema, depth: int = 0):
        schema = self.deref(schema)
        if depth > 12 or not isinstance(schema, dict) or "type" not in schema:
            return self.junk()  # no type: anything goes
        if self.broken(rarer=4):
            return self.junk()  # most often the wrong type
        maker = {"object": self.object, "array": self.array, "string": self.string, "integer": self.integer,
                 "number": self.number, "boolean": self.boolean}[schema["type"]]
        return maker(schema, depth)

    def object(self, schema, depth):
        rng = self.rng
        properties, required = schema.get("properties", {}), schema.get("required", [])
        out = {name: self.value(sub, depth + 1) for name, sub in properties.items()
               if name in required or rng.random() < 0.5}
        if self.broken():
            mistake = rng.choice(["drop", "extra", "case"]) if out else "extra"
            if mistake == "drop":
                del out[rng.choice(sorted(out))]
            elif mistake == "extra":
                out[rng.choice(["extra", "", "customData", "xxx"])] = self.junk()
            else:
                name = rng.choice(sorted(out))
                out[name[:1].swapcase() + name[1:]] = out.pop(name)
        return out

    def array(self, schema, depth):
        rng = self.rng
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        items = schema.get("items", {})
        drawn = [self.value(items, depth + 1) for _ in range(rng.randint(low, low + 2))]
        size = len(drawn)
        if self.big and rng.random() < 0.1:
            size = rng.randint(size, 500 if high is None else max(size, high))
            self.big = False  # one big array per payload: nested ones would multiply
        if self.broken():
            size = rng.choice([max(low - 1, 0), size + 1, size if high is None else high + 1])
        if size and not drawn:
            drawn = [self.value(items, depth + 1)]
        # Big arrays repeat the drawn elements: building thousands would take longer than checking them.
        out = [drawn[i % len(drawn)] for i in range(size)]
        if out and self.broken():
            out[rng.randrange(len(out))] = self.junk()
        return out

    def string(self, schema, depth):
        rng = self.rng
        broken = self.broken()
        if "enum" in schema:
            choice = rng.choice(schema["enum"])
            if broken:
                return rng.choice([choice.lower(), choice.upper(), choice + " ", choice[:-1], "", rng.choice(self.pool["text"])])
            return choice
        if schema.get("format") == "date-time":
            if broken:
                return rng.choice(BAD_DATES + self.pool["text"])
            return rng.choice(DATE_STYLES)(rng.choice(self.pool["date"]))
        low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
        if broken:
            length = rng.choice([high + 1, high + rng.randint(2, 5), max(low - 1, 0)])
        else:
            length = rng.choice([low, high, max(low, high - 1), rng.randint(low, high)])
        text = rng.choice(self.pool["text"])
        return (text + rng.choice(self.pool["char"]) * length)[:length]

    def integer(self, schema, depth):
        rng = self.rng
        low, high = schema.get("minimum"), schema.get("maximum")
        low = -(2**40) if low is None else math.ceil(low)
        high = 2**40 if high is None else math.floor(high)
        value = rng.choice([low, high, rng.randint(low, high), rng.randint(low, min(high, low + 10))]
                           + [i for i in self.pool["int"] if low <= i <= high])
        if self.broken():
            value = rng.choice([True, False, float(value), value + 0.5, str(value), low - 1, high + 1])
        return value

    def number(self, schema, depth):
        rng = self.rng
        low, high = schema.get("minimum"), schema.get("maximum")
        low = -1e5 if low is None else float(low)
        high = 1e5 if high is None else float(high)
        value = rng.choice([low, high, rng.randint(int(low * 10), int(high * 10)) / 10, rng.randint(int(low), int(high)),
                            rng.uniform(low, high)] + [f for f in self.pool["float"] if low <= f <= high])
        if self.broken():
            value = rng.choice([True, str(value), value + 0.05, value + 0.01, low - 0.1, high + 0.1, 1e308,
                                float("nan"), float("inf"), 10**400, rng.choice(self.pool["float"])])
        return value

    def boolean(self, schema, depth):
        if self.broken():
            return self.rng.choice([0, 1, "true", None])
        return self.rng.random() < 0.5


def payloads(root: dict, *, big: bool):
    """A strategy of payloads for ``root``, from valid to riddled with mistakes."""

    @st.composite
    def strategy(draw):
        pool = draw(POOL)
        maker = Payloads(pool, root, big)
        if pool["mistakes"] == "one":
            # Build the valid payload once to count its nodes, then again from the same seed,
            # identical up to the one node broken (breaking draws nothing from the seed).
            maker.value(root)
            maker = Payloads(pool, root, big, only=random.Random(pool["seed"] + 1).randint(1, maker.nodes))
        elif maker.rate and maker.rng.randrange(100) < 5:
            return maker.junk()  # not even an object
        return maker.value(root)

    return strategy()


def outcome(function):
    """What ``function()`` gives, or the exception type it raises."""
    try:
        return function()
    except Exception as exc:  # noqa: BLE001 - an exception is an outcome to compare
        return type(exc)


def check_agreement(key, payload):
    """fast == jsonschema for ``payload``; rpc.validate gives what jsonschema alone would."""
    validator = rpc._validator(*key)
    fast = rpc._fast_checks[key]
    instance = payload
    if key in rpc._DECIMAL_ACTIONS:
        instance = json.loads(json.dumps(payload), parse_float=D)
    errors = outcome(lambda: sorted(validator.iter_errors(instance), key=lambda e: e.path))
    verdict = outcome(lambda: fast(instance))
    if isinstance(errors, type):  # jsonschema raises (NaN under a Decimal multipleOf...): never "valid"
        assert verdict is not True, (key, payload)
        # rpc.validate refuses such a number as a property violation instead of raising.
        assert rpc.validate(*key, payload)[0] == "property"
        return
    assert verdict is (not errors), (key, payload, errors[:1])
    expected = None if not errors else (rpc._meaning_of(errors[0]), rpc._describe(errors[0]))
    assert rpc.validate(*key, payload) == expected


STRATEGIES = {}


def strategy_for(key, big):
    """One strategy object per schema: hypothesis caches work per strategy."""
    if (key, big) not in STRATEGIES:
        STRATEGIES[key, big] = payloads(rpc._validator(*key).schema, big=big)
    return STRATEGIES[key, big]


SETTINGS = dict(deadline=None, database=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.mark.parametrize("key", KEYS, ids=key_id)
# The default run is reproducible (derandomized): CI must not turn red on a new random draw;
# the slow run below explores at random.
@settings(max_examples=5, derandomize=True, **SETTINGS)
@given(data=st.data())
def test_fast_check_agrees_with_jsonschema(key, data):
    check_agreement(key, data.draw(strategy_for(key, big=False)))


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS, ids=key_id)
@settings(max_examples=200, **SETTINGS)
@given(data=st.data())
def test_fast_check_agrees_with_jsonschema_at_length(key, data):
    check_agreement(key, data.draw(strategy_for(key, big=True)))


# ------------------------------------------------------------------ the case that motivated it


def local_list(entries: int) -> dict:
    return {"listVersion": 3, "updateType": "Full", "localAuthorizationList": [
        {"idTag": f"TAG{i:06d}", "idTagInfo": {"status": "Accepted", "expiryDate": "2027-01-01T00:00:00Z",
                                               "parentIdTag": "PARENT"}} for i in range(entries)]}


def test_send_local_list_of_10000_entries_is_checked_quickly():
    """Timing is printed, not asserted (a loaded machine must not fail the suite); see -s."""
    payload = local_list(10_000)
    rpc.validate("1.6", 2, "SendLocalList", payload)  # compile outside the timing
    started = time.perf_counter()
    assert rpc.validate("1.6", 2, "SendLocalList", payload) is None
    elapsed = time.perf_counter() - started
    print(f"\nSendLocalList of 10,000 entries validated in {elapsed * 1000:.1f} ms")
    # the fast check refuses, jsonschema names the error (on a shorter list: it takes 0.5 s for 10,000)
    payload = local_list(100)
    payload["localAuthorizationList"][99]["idTagInfo"]["status"] = "Maybe"
    assert rpc.validate("1.6", 2, "SendLocalList", payload) == (
        "property", "localAuthorizationList/99/idTagInfo/status: not one of the allowed values")
