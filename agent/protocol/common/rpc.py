"""OCPP-J framing rules that differ between versions, and payload validation.

The `ocpp` library (2.1.0) gets several of these wrong; we correct them here,
once, for every adapter:

* it answers an unknown action with NotSupported and a known action without a
  handler with NotImplemented: OCPP-J says the reverse;
* on 1.6 it sends 2.0.1's spellings (FormatViolation, OccurrenceConstraint...);
* a FormatViolation reply embeds the whole message and schema (~10 KB);
* ``date-time`` formats are never checked;
* invalid JSON gets no reply at all;
* 2.1: its MessageType knows neither SEND (6) nor CALLRESULTERROR (5), and a CALL
  without a handler is dropped unanswered (our adapter base answers every CALL).

Message type 6 (SEND) is validated against the schema named after the action alone
(2.1's ``NotifyPeriodicEventStream.json``).
"""

from __future__ import annotations

import decimal
import json
from dataclasses import dataclass

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

from agent.protocol.common import fastschema
from agent.runtime.clock import unix_time

# Error codes by meaning, spelled as each version's OCPP-J specification spells them.
_CODES = {
    "1.6": {
        "format": "FormationViolation",
        "occurrence": "OccurenceConstraintViolation",
        "missing": "ProtocolError",  # 1.6: "Payload for Action is incomplete"
        "type": "TypeConstraintViolation",
        "property": "PropertyConstraintViolation",
        "rpc": "FormationViolation",  # 1.6 has no RpcFrameworkError
        "message_type": "FormationViolation",
        "unknown_action": "NotImplemented",
        "unsupported_action": "NotSupported",
        "internal": "InternalError",
        "generic": "GenericError",
    },
    "2.0.1": {
        "format": "FormatViolation",
        "occurrence": "OccurrenceConstraintViolation",
        "missing": "OccurrenceConstraintViolation",
        "type": "TypeConstraintViolation",
        "property": "PropertyConstraintViolation",
        "rpc": "RpcFrameworkError",
        "message_type": "MessageTypeNotSupported",
        "unknown_action": "NotImplemented",
        "unsupported_action": "NotSupported",
        "internal": "InternalError",
        "generic": "GenericError",
    },
}
_CODES["2.1"] = _CODES["2.0.1"]  # 2.1's OCPP-J words its errors as 2.0.1 does

# Error codes the library (or a handler) may raise, translated per version.
_SPELLINGS = {
    "1.6": {"FormatViolation": "FormationViolation", "OccurrenceConstraintViolation": "OccurenceConstraintViolation"},
    "2.0.1": {"FormationViolation": "FormatViolation", "OccurenceConstraintViolation": "OccurrenceConstraintViolation"},
}
_SPELLINGS["2.1"] = _SPELLINGS["2.0.1"]

#: 2.1's message types that are never answered: CALLRESULTERROR (the peer's error about one of our
#: CALLRESULTs) and SEND (a CALL without a reply, [6, id, action, payload]). The library knows neither.
CALLRESULTERROR, SEND = 5, 6
_UNANSWERED = {"2.1": frozenset({CALLRESULTERROR, SEND})}

MAX_DESCRIPTION = 200  # keep CALLERRORs small: a description, never the schema


def error_code(version: str, meaning: str) -> str:
    """The CALLERROR code for ``meaning`` ("format", "missing", ...) in ``version``."""
    return _CODES[version][meaning]


def spell_error_code(version: str, code: str) -> str:
    """Translate an error code to the spelling ``version`` uses."""
    return _SPELLINGS[version].get(code, code)


def unanswered_types(version: str) -> frozenset[int]:
    """The message types beyond CALL/CALLRESULT/CALLERROR that ``version`` has (none before 2.1)."""
    return _UNANSWERED.get(version, frozenset())


def send_frame(message_id: str, action: str, payload: dict) -> str:
    """Serialize a 2.1 SEND: a CALL that is never answered."""
    return json.dumps([SEND, message_id, action, payload], separators=(",", ":"))


@dataclass(frozen=True)
class FrameError(Exception):
    """A frame that cannot be handled; answered with a CALLERROR when it has an id."""

    message_id: str | None
    code: str
    description: str

    def to_callerror(self) -> str:
        """The CALLERROR frame; id "-1" when the message id could not be read."""
        return callerror_frame(self.message_id or "-1", self.code, self.description)


def callerror_frame(message_id: str, code: str, description: str, details: dict | None = None) -> str:
    """Serialize a CALLERROR with a short description."""
    return json.dumps([4, message_id, code, description[:MAX_DESCRIPTION], details or {}], separators=(",", ":"))


def _check_date_time(value: object) -> bool:
    """RFC 3339 date-time as OCPP uses it ("2026-11-21T10:00:00Z"); non-strings are the type check's job."""
    if not isinstance(value, str):
        return True
    if "T" not in value.upper():
        return False
    try:
        unix_time(value)  # the one parser every handler reads dateTimes with: what passes here, they can read
    except ValueError:
        return False
    return True


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(_check_date_time)

# 1.6 schemas put multipleOf 0.1 on charging rates; binary floats fail that
# check (21.4 is 21.399999...), so those payloads are validated as Decimals.
_DECIMAL_ACTIONS = {("1.6", 2, "SetChargingProfile"), ("1.6", 2, "RemoteStartTransaction"),
                    ("1.6", 3, "GetCompositeSchedule")}
_validators: dict[tuple[str, int, str], Draft4Validator] = {}
# The same schemas compiled by fastschema (None where it gives up): jsonschema costs ~50 µs per
# array element, far too much for a 10,000-entry SendLocalList, so it only runs for payloads the
# fast check refuses, to name the first error.
_fast_checks: dict[tuple[str, int, str], fastschema.Check | None] = {}


def _validator(version: str, message_type: int, action: str) -> Draft4Validator | None:
    key = (version, message_type, action)
    if key not in _validators:
        parse_float = decimal.Decimal if key in _DECIMAL_ACTIONS else float
        try:
            base = get_validator(message_type, action, version, parse_float=parse_float)
        except (OSError, ValueError):
            return None
        _validators[key] = Draft4Validator(base.schema, format_checker=_FORMATS)
        _fast_checks[key] = fastschema.compile(base.schema, _FORMATS)
    return _validators[key]


def validate(version: str, message_type: int, action: str, payload: dict) -> tuple[str, str] | None:
    """Check ``payload`` against the schema; return (meaning, short description) or None if valid.

    The compiled fast check answers for valid payloads; jsonschema runs only when it refuses
    (or raises, or the schema did not compile), so the error reported is always jsonschema's.
    """
    validator = _validator(version, message_type, action)
    if validator is None:
        return None
    if (version, message_type, action) in _DECIMAL_ACTIONS:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    fast = _fast_checks[(version, message_type, action)]
    if fast is not None:
        try:
            if fast(payload):
                return None
        except Exception:  # noqa: BLE001 - e.g. NaN under multipleOf: jsonschema judges it below, as it always did
            pass
    try:
        error = next(iter(sorted(validator.iter_errors(payload), key=lambda e: e.path)), None)
    except (ArithmeticError, ValueError, TypeError):
        # A number no rule can be checked on (1e40, Infinity or NaN under multipleOf with Decimals): refuse
        # it as out of range rather than let the exception end the connection's reader.
        return "property", "a number is out of the range this station can check"
    if error is None:
        return None
    return _meaning_of(error), _describe(error)


def _meaning_of(error: SchemaError) -> str:
    if error.validator == "type":
        return "type"
    if error.validator == "required":
        return "missing"
    if error.validator in ("additionalProperties",):
        return "format"
    if error.validator in ("minItems", "maxItems"):
        return "occurrence"
    return "property"  # enum, maxLength, minimum, maximum, format, pattern, multipleOf


# What each schema rule demands, worded without the offending value: the value may be a
# secret (an AuthorizationKey that is too long), and the description is logged and sent back.
_RULES = {
    "type": "must be of type {}", "maxLength": "longer than {} characters", "minLength": "shorter than {} characters",
    "maximum": "above the maximum {}", "minimum": "below the minimum {}", "maxItems": "more than {} items",
    "minItems": "fewer than {} items", "multipleOf": "not a multiple of {}", "format": "not a valid {}",
    "pattern": "does not match {}", "enum": "not one of the allowed values",
}


def _describe(error: SchemaError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    rule = _RULES.get(error.validator)
    if rule is not None:
        message = rule.format(error.validator_value)
    elif error.validator in ("required", "additionalProperties"):
        message = error.message  # names a property (a key of the schema or of the payload), not a value
    else:
        message = f"violates {error.validator}"
    message = message if len(message) <= 120 else message[:117] + "..."
    return f"{where}: {message}"
