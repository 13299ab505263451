"""A fast yes/no pre-check for OCPP's JSON schemas, run before jsonschema.

jsonschema spends about 50 µs per array element (it builds an error iterator,
resolves ``$ref`` through ``referencing`` and tracks paths for every value);
a 10,000-entry SendLocalList took half a second of the one-second budget.
Nearly every payload is valid, so a checker that only answers "valid?" can
skip all of that: ``compile`` turns a schema into nested closures once, and
``rpc.validate`` calls jsonschema only when the closure says no, to get the
first error's meaning and description.

The contract is one-sided: a closure may say False for a payload jsonschema
accepts (we only lose time), but must never say True for one it refuses. So
the compiler implements only the Draft 4 subset OCPP's schemas use, with
jsonschema's (4.x, ``Draft4Validator``) exact semantics, and gives up
(``compile`` returns None) on any keyword or shape it does not know, rather
than guess.

Semantics mirrored from Draft4Validator, each on purpose:

* types: bool is neither "integer" nor "number"; "integer" is an ``int``
  only (1.0 is a number, not an integer, in Draft 4); "number" is any
  ``numbers.Number`` (so the Decimals rpc uses for some 1.6 actions count);
  "array" is a ``list`` (not a tuple) and "object" a ``dict``;
* every keyword other than ``type`` and ``enum``/``format`` applies only to
  values of its own type (maxLength ignores numbers...);
* siblings of ``$ref`` are ignored, and ``$id`` is not an identifier in
  Draft 4 (only ``id`` is, which we refuse);
* ``additionalItems`` is ignored unless ``items`` is a list (which we refuse);
* ``format`` runs the FormatChecker's own function for the formats it knows,
  and checks nothing for the ones it does not (OCPP 1.6 uses "uri");
* minimum/maximum/multipleOf use the same comparisons and arithmetic, so NaN,
  float quotients (21.4 / 0.1) and Decimals come out the same way; where
  jsonschema would raise, the closure raises too, and the caller falls back
  to jsonschema.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from fractions import Fraction

Check = Callable[[object], bool]

# Keywords Draft4Validator has no validator for, or that only carry documentation.
_INERT = frozenset({"$schema", "$id", "javaType", "comment", "description", "title", "default", "definitions"})
_UNDERSTOOD = frozenset({
    "type", "properties", "required", "additionalProperties", "enum", "maxLength", "minLength",
    "minimum", "maximum", "multipleOf", "maxItems", "minItems", "items", "additionalItems", "format",
})


class _Unsupported(Exception):
    """A keyword or shape this compiler does not implement: the schema is left to jsonschema."""


def _accept(value: object) -> bool:
    return True


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


def _is_array(value: object) -> bool:
    return isinstance(value, list)


def _is_boolean(value: object) -> bool:
    return isinstance(value, bool)


def _is_null(value: object) -> bool:
    return value is None


def _is_integer(value: object) -> bool:
    # bool subclasses int, but JSON's true is not the number 1
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    # int and float first: numbers.Number is an ABC, slower to test against
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or isinstance(value, numbers.Number)


_TYPES: dict[str, Check] = {
    "string": _is_string, "object": _is_object, "array": _is_array, "boolean": _is_boolean,
    "null": _is_null, "integer": _is_integer, "number": _is_number,
}


def compile(schema: dict, format_checker=None) -> Check | None:  # noqa: A001 - the name the callers know
    """Compile a Draft 4 ``schema`` into a function ``check(value) -> bool``.

    ``check`` returns True only for values Draft4Validator(schema,
    format_checker=format_checker) finds valid; it may raise where jsonschema
    would raise. ``format_checker`` is a ``jsonschema.FormatChecker`` (or None
    for no format checks, as jsonschema does without one). Returns None when
    the schema uses anything this module does not implement: the caller must
    then use jsonschema alone.
    """
    try:
        return _Compiler(schema, format_checker).compile(schema)
    except _Unsupported:
        return None


def _all_of(checks: list[Check]) -> Check | None:
    """One function that is True when every check is; None when there is none."""
    checks = [c for c in checks if c is not None and c is not _accept]
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda value: first(value) and second(value)
    frozen = tuple(checks)

    def every(value: object) -> bool:
        for check in frozen:
            if not check(value):
                return False
        return True

    return every


class _Compiler:
    """Compiles one root schema; remembers each ``$ref`` target so shared definitions compile once."""

    def __init__(self, root: dict, format_checker) -> None:
        self.root = root
        self.formats = None if format_checker is None else dict(format_checker.checkers)
        self.done: dict[str, Check] = {}
        self.pending: dict[str, list] = {}

    def compile(self, schema: object) -> Check:
        if not isinstance(schema, dict):
            raise _Unsupported("boolean or malformed schema")
        if "$ref" in schema:
            # Draft 4 ignores every sibling of $ref
            return self.reference(schema["$ref"])
        unknown = schema.keys() - _UNDERSTOOD - _INERT
        if unknown:
            raise _Unsupported(f"keywords {sorted(unknown)}")
        names = self.type_names(schema)
        strings = self.string_checks(schema)
        numbers_ = self.number_checks(schema)
        arrays = self.array_checks(schema)
        enum = self.enum_values(schema)
        fmt = self.format_check(schema)

        if names is not None and len(names) == 1:
            return self.single_type(names[0], schema, strings, numbers_, arrays, enum, fmt)

        # No type, or several: apply each group only to values of its type, as jsonschema does.
        type_ok = None if names is None else self.any_type(names)
        string_body = _all_of(strings)
        number_body = _all_of(numbers_)
        array_body = _all_of(arrays)
        object_body = self.object_check(schema, typed=False)
        tail = _all_of([None if enum is None else self.enum_check(enum), fmt])
        if type_ok is None and not any((string_body, number_body, array_body, object_body, tail)):
            return _accept  # only documentation keywords: anything goes

        def check(value: object) -> bool:
            if type_ok is not None and not type_ok(value):
                return False
            if isinstance(value, str):
                if string_body is not None and not string_body(value):
                    return False
            elif isinstance(value, dict):
                if object_body is not None and not object_body(value):
                    return False
            elif isinstance(value, list):
                if array_body is not None and not array_body(value):
                    return False
            elif _is_number(value):
                if number_body is not None and not number_body(value):
                    return False
            return tail is None or tail(value)

        return check

    # ------------------------------------------------------------ shapes

    def single_type(self, name, schema, strings, numbers_, arrays, enum, fmt) -> Check:
        """The common case, one type: test it first, then only that type's keywords."""
        if name == "object":
            body = self.object_check(schema, typed=True) or _is_object
            return _all_of([body, None if enum is None else self.enum_check(enum), fmt]) or _accept
        if name == "string":
            # The two shapes nearly every OCPP string has, fused into one call per value.
            if len(strings) == 1 and "maxLength" in schema and enum is None and fmt is None:
                high = schema["maxLength"]
                return lambda value: isinstance(value, str) and not len(value) > high
            if not strings and enum is not None and fmt is None:
                return lambda value: isinstance(value, str) and value in enum
            # the value is known to be a str here, so enum is plain set membership
            members = None if enum is None else enum.__contains__
            body = _all_of([*strings, members, fmt])
            if body is None:
                return _is_string
            return lambda value: isinstance(value, str) and body(value)
        if name == "array":
            body = _all_of([*arrays, None if enum is None else self.enum_check(enum), fmt])
        elif name in ("integer", "number"):
            body = _all_of([*numbers_, None if enum is None else self.enum_check(enum), fmt])
        else:  # boolean, null: only enum and format can apply
            body = _all_of([None if enum is None else self.enum_check(enum), fmt])
        is_type = _TYPES[name]
        if body is None:
            return is_type
        return lambda value: is_type(value) and body(value)

    def type_names(self, schema: dict) -> list[str] | None:
        if "type" not in schema:
            return None
        names = schema["type"]
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in _TYPES for n in names):
            raise _Unsupported(f"type {names!r}")
        return names

    @staticmethod
    def any_type(names: list[str]) -> Check:
        checks = tuple(_TYPES[n] for n in names)
        return lambda value: any(check(value) for check in checks)

    # ------------------------------------------------------------ keywords per type

    @staticmethod
    def string_checks(schema: dict) -> list[Check]:
        checks = []
        if "minLength" in schema:
            low = _limit(schema["minLength"])
            checks.append(lambda value: not len(value) < low)
        if "maxLength" in schema:
            high = _limit(schema["maxLength"])
            checks.append(lambda value: not len(value) > high)
        return checks

    @staticmethod
    def number_checks(schema: dict) -> list[Check]:
        # written as "not failed" with jsonschema's own comparisons: NaN passes both bounds there too
        checks = []
        if "minimum" in schema:
            low = _bound(schema["minimum"])
            checks.append(lambda value: not value < low)
        if "maximum" in schema:
            high = _bound(schema["maximum"])
            checks.append(lambda value: not value > high)
        if "multipleOf" in schema:
            checks.append(_multiple_of(_bound(schema["multipleOf"])))
        return checks

    def array_checks(self, schema: dict) -> list[Check]:
        checks = []
        if "minItems" in schema:
            low = _limit(schema["minItems"])
            checks.append(lambda value: not len(value) < low)
        if "maxItems" in schema:
            high = _limit(schema["maxItems"])
            checks.append(lambda value: not len(value) > high)
        items = schema.get("items", {})
        if not isinstance(items, dict):
            raise _Unsupported("items as a list")  # additionalItems would then apply as well
        if "items" in schema:
            item = self.compile(items)
            if item is not _accept:
                checks.append(lambda value: all(map(item, value)))
        return checks

    def object_check(self, schema: dict, *, typed: bool) -> Check | None:
        """Check of properties/required/additionalProperties; with ``typed`` it also tests for a dict."""
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        closed = schema.get("additionalProperties", True)
        if not isinstance(properties, dict) or not all(isinstance(k, str) for k in properties):
            raise _Unsupported("properties")
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
            raise _Unsupported("required")
        if closed is not True and closed is not False:
            raise _Unsupported("additionalProperties as a schema")
        checks = {name: self.compile(sub) for name, sub in properties.items()}
        need = tuple(dict.fromkeys(required))
        if closed:
            # Open object: only the listed properties are checked, others pass untouched.
            checks = {name: check for name, check in checks.items() if check is not _accept}
            if not checks and not need:
                return None
            get = checks.get

            def check_open(value: object) -> bool:
                if typed and not isinstance(value, dict):
                    return False
                for name in need:
                    if name not in value:
                        return False
                for key, member in value.items():
                    test = get(key)
                    if test is not None and not test(member):
                        return False
                return True

            return check_open

        # Closed object (additionalProperties false): one lookup per key both finds its check
        # and proves the key is allowed; this loop is where a big array's time goes.
        lookup = checks.get

        def check_closed(value: object) -> bool:
            if typed and not isinstance(value, dict):
                return False
            for name in need:
                if name not in value:
                    return False
            for key, member in value.items():
                test = lookup(key)
                if test is None or not test(member):
                    return False
            return True

        return check_closed

    # ------------------------------------------------------------ keywords for any type

    @staticmethod
    def enum_values(schema: dict) -> frozenset | None:
        if "enum" not in schema:
            return None
        values = schema["enum"]
        # Strings only: jsonschema compares them with ==, which a set lookup does too. Numbers,
        # bools and containers have their own equality rules there (1 vs True, 1 vs 1.0).
        if not isinstance(values, list) or not values or not all(type(v) is str for v in values):
            raise _Unsupported("enum of non-strings")
        return frozenset(values)

    @staticmethod
    def enum_check(values: frozenset) -> Check:
        return lambda value: isinstance(value, str) and value in values

    def format_check(self, schema: dict) -> Check | None:
        if "format" not in schema:
            return None
        name = schema["format"]
        if not isinstance(name, str):
            raise _Unsupported("format")
        if self.formats is None or name not in self.formats:
            return None  # jsonschema checks nothing for a format its checker has no function for
        func, raises = self.formats[name]
        if not raises:
            return lambda value: bool(func(value))

        def check(value: object) -> bool:
            try:
                return bool(func(value))
            except raises:
                return False

        return check

    # ------------------------------------------------------------ $ref

    def reference(self, ref: object) -> Check:
        if not isinstance(ref, str):
            raise _Unsupported("$ref")
        if ref in self.done:
            return self.done[ref]
        if ref in self.pending:
            # a definition that refers back to itself: call through a cell filled in once compiled
            cell = self.pending[ref]
            return lambda value: cell[0](value)
        target = self.resolve(ref)
        cell = [None]
        self.pending[ref] = cell
        check = self.compile(target)
        cell[0] = check
        del self.pending[ref]
        self.done[ref] = check
        return check

    def resolve(self, ref: str) -> object:
        """A same-document JSON pointer ("#/definitions/X"); anything else is jsonschema's to fetch."""
        if ref == "#":
            segments = []
        elif ref.startswith("#/"):
            segments = ref[2:].split("/")
        else:
            raise _Unsupported(f"$ref {ref!r}")
        node = self.root
        for segment in segments:
            # escapes (~0, ~1, %xx) and Draft 4 "id" scopes would need more care than OCPP needs
            if "~" in segment or "%" in segment or not isinstance(node, dict) or "id" in node:
                raise _Unsupported(f"$ref {ref!r}")
            if segment not in node:
                raise _Unsupported(f"$ref {ref!r} does not resolve")
            node = node[segment]
        if isinstance(node, dict) and "id" in node:
            raise _Unsupported(f"$ref {ref!r}")
        return node


def _limit(value: object) -> int:
    """A length or item-count limit; JSON Schema requires a non-negative integer."""
    if not _is_integer(value) or value < 0:
        raise _Unsupported(f"limit {value!r}")
    return value


def _bound(value: object) -> object:
    if not _is_number(value):
        raise _Unsupported(f"bound {value!r}")
    return value


def _multiple_of(step: object) -> Check:
    """jsonschema's multipleOf arithmetic: float steps divide and compare, others use %."""
    if isinstance(step, float):

        def check(value: object) -> bool:
            quotient = value / step
            try:
                return not int(quotient) != quotient
            except OverflowError:
                # an infinite float quotient: decide exactly with fractions, as jsonschema does
                return (Fraction(value) / Fraction(step)).denominator == 1

        return check
    return lambda value: not value % step
