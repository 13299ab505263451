"""The oracle of the protocol fuzzer: what a Charging Station must answer to any frame from a CSMS.

Written from the OCPP-J specifications (1.6 section 4.2, 2.0.1 part 4 section 4.2) and the
``ocpp`` library's JSON schemas, not from the agent's code: ``expect(text, version)`` says
whether a frame deserves no answer, a CALLRESULT, or a CALLERROR, with which message id and which
error codes are acceptable (a set, where the specifications leave a choice); ``Expect.judge``
checks an answer against that. ``KNOWN_BUGS`` names the frames that hit a bug a strict-xfail test
pins, so the fuzzer can count those answers apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import ocpp
from jsonschema import FormatChecker
from jsonschema.validators import validator_for

# ------------------------------------------------------------------ the specifications

SCHEMAS = Path(ocpp.__file__).parent

# Error codes by meaning, as each version's OCPP-J text defines them. Where a frame fits two
# definitions (e.g. 2.0.1 "FormatViolation: syntactically incorrect" and "ProtocolError: not
# conform the PDU structure"), both are accepted.
CODES = {
    "1.6": {
        "unparseable": {"FormationViolation"},
        "frame": {"FormationViolation", "ProtocolError"},
        "message_type": {"FormationViolation", "ProtocolError"},
        "payload": {"FormationViolation", "ProtocolError"},
        "type": {"TypeConstraintViolation"},
        "required": {"ProtocolError", "OccurenceConstraintViolation"},
        "additionalProperties": {"FormationViolation", "ProtocolError"},
        "occurrence": {"OccurenceConstraintViolation"},
        "property": {"PropertyConstraintViolation"},
        "unknown_action": {"NotImplemented"},
        "unsupported_action": {"NotSupported"},
    },
    "2.0.1": {
        "unparseable": {"RpcFrameworkError", "FormatViolation"},
        "frame": {"RpcFrameworkError", "FormatViolation", "ProtocolError"},
        "message_type": {"MessageTypeNotSupported"},
        "payload": {"FormatViolation", "ProtocolError", "RpcFrameworkError"},
        "type": {"TypeConstraintViolation"},
        "required": {"OccurrenceConstraintViolation", "ProtocolError"},
        "additionalProperties": {"FormatViolation", "ProtocolError"},
        "occurrence": {"OccurrenceConstraintViolation"},
        "property": {"PropertyConstraintViolation"},
        "unknown_action": {"NotImplemented"},
        "unsupported_action": {"NotSupported"},
    },
}
_KEYWORD_MEANING = {"type": "type", "required": "required", "additionalProperties": "additionalProperties",
                    "minItems": "occurrence", "maxItems": "occurrence"}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

def _schema_file(version: str, action: str, response: bool) -> Path:
    if version == "1.6":
        return SCHEMAS / "v16" / "schemas" / f"{action}{'Response' if response else ''}.json"
    return SCHEMAS / "v201" / "schemas" / f"{action}{'Response' if response else 'Request'}.json"


@cache
def known_actions(version: str) -> frozenset[str]:
    """Every action of the version: one request schema each in the ``ocpp`` library."""
    if version == "1.6":
        names = [p.stem for p in (SCHEMAS / "v16" / "schemas").glob("*.json") if not p.stem.endswith("Response")]
    else:
        names = [p.stem[:-len("Request")] for p in (SCHEMAS / "v201" / "schemas").glob("*Request.json")]
    return frozenset(names)


@cache
def handled_actions(version: str) -> frozenset[str]:
    """CSMS-initiated actions the agent declares it supports (its implementation statement)."""
    from agent.commands.pics import support_table

    return frozenset(row["action"] for row in support_table(version)
                     if row["supported"] and row["initiator"] in ("CSMS", "both"))


def _check_date_time(value) -> bool:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return not isinstance(value, str)
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(_check_date_time)


@cache
def validator(version: str, action: str, response: bool = False):
    """A validator for the action's request (or response) schema, of the draft the schema names."""
    schema = json.loads(_schema_file(version, action, response).read_text())
    return validator_for(schema)(schema, format_checker=_FORMATS)


def schema_problems(version: str, action: str, payload: dict) -> set[str]:
    """The meanings ("type", "required", …) of every schema error in ``payload``; empty if valid."""
    return {_KEYWORD_MEANING.get(error.validator, "property")
            for error in validator(version, action).iter_errors(payload)}


# ------------------------------------------------------------------ the oracle

@dataclass(frozen=True)
class Expect:
    """What the agent must answer: ``kind`` "none", "result" or "error", with ``message_id`` and ``codes``."""

    kind: str
    message_id: str | None = None
    codes: frozenset[str] = frozenset()
    action: str | None = None  # for a CALLRESULT: whose response schema it must satisfy

    def judge(self, reply: list | None, version: str) -> str | None:
        """None if ``reply`` is a right answer, else what is wrong with it."""
        if self.kind == "none":
            return None if reply is None else f"expected no answer, got {str(reply)[:200]}"
        if reply is None:
            return f"expected a {self.kind} for {str(self.message_id)[:40]}, got nothing"
        if not isinstance(reply, list) or len(reply) < 3 or reply[1] != self.message_id:
            return f"expected an answer to {str(self.message_id)[:40]}, got {str(reply)[:200]}"
        if self.kind == "result":
            if reply[0] == 4 and reply[2] in self.codes:
                return None  # a station limit (e.g. GetConfigurationMaxKeys) the specification allows
            if reply[0] != 3 or len(reply) != 3 or not isinstance(reply[2], dict):
                return f"expected a CALLRESULT, got {str(reply)[:200]}"
            errors = [e.message for e in validator(version, self.action, response=True).iter_errors(reply[2])]
            return f"{self.action} CALLRESULT violates its schema: {errors[:2]}" if errors else None
        if reply[0] != 4 or len(reply) != 5:
            return f"expected a CALLERROR {sorted(self.codes)}, got {str(reply)[:200]}"
        if reply[2] not in self.codes:
            return f"expected one of {sorted(self.codes)}, got {reply[2]!r} ({str(reply[3])[:100]})"
        if not isinstance(reply[3], str) or not isinstance(reply[4], dict) or len(json.dumps(reply)) > 2048:
            return f"malformed CALLERROR {str(reply)[:200]}"
        return None


def _valid_id(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 36


def expect(text: str, version: str) -> Expect:
    """The right answer to ``text`` from a CSMS, per the OCPP-J rules of ``version``."""
    codes = CODES[version]
    try:
        msg = json.loads(text)
    except RecursionError:  # valid JSON too deep to parse: answered as an unreadable message
        return Expect("error", "-1", frozenset(codes["unparseable"] | codes["frame"]))
    except ValueError:
        return Expect("error", "-1", frozenset(codes["unparseable"]))
    if not isinstance(msg, list) or not msg:
        return Expect("error", "-1", frozenset(codes["frame"]))
    kind = msg[0]
    is_int = type(kind) is int
    if is_int and kind in (3, 4):
        return Expect("none")  # a CALLRESULT or CALLERROR is never answered, however malformed
    if not (is_int and kind == 2):
        return Expect("error", _id_for_error(msg), frozenset(codes["message_type"]))
    if len(msg) < 2 or not _valid_id(msg[1]):
        return Expect("error", "-1", frozenset(codes["frame"]))
    message_id = msg[1]
    if len(msg) != 4 or not isinstance(msg[2], str):
        return Expect("error", message_id, frozenset(codes["frame"]))
    return _expect_call(message_id, msg[2], msg[3], version)


def _id_for_error(msg: list):
    # A readable id is echoed; an unreadable one is replaced by "-1" (both accepted for a long string).
    return msg[1] if len(msg) > 1 and _valid_id(msg[1]) else "-1"


def _expect_call(message_id: str, action: str, payload, version: str) -> Expect:
    codes = CODES[version]
    if action not in known_actions(version):
        accepted = codes["unknown_action"] | (codes["payload"] if not isinstance(payload, dict) else set())
        return Expect("error", message_id, frozenset(accepted))
    if not isinstance(payload, dict):
        accepted = codes["payload"] | (codes["unsupported_action"] if action not in handled_actions(version) else set())
        return Expect("error", message_id, frozenset(accepted))
    problems = schema_problems(version, action, payload)
    if action not in handled_actions(version):
        return Expect("error", message_id, frozenset(codes["unsupported_action"].union(*(codes[p] for p in problems))))
    if problems:
        return Expect("error", message_id, frozenset(set().union(*(codes[p] for p in problems))))
    # A station may refuse more items than its ItemsPerMessage / GetConfigurationMaxKeys allow.
    limited = codes["occurrence"] if any(isinstance(v, list) and len(v) > 1 for v in payload.values()) else set()
    return Expect("result", message_id, frozenset(limited), action=action)


# ------------------------------------------------------------------ known bugs

def _negative_composite_duration(version: str, msg) -> bool:
    return (isinstance(msg, list) and len(msg) == 4 and msg[0] == 2 and msg[2] == "GetCompositeSchedule"
            and isinstance(msg[3], dict) and isinstance(msg[3].get("duration"), int) and msg[3]["duration"] < 0)


#: Frames that hit a bug a strict-xfail test pins (named here): their wrong answers are counted on
#: their own in the figures, so the fuzzer keeps judging everything else.
KNOWN_BUGS = {
    "test_fuzzing_negative_composite_schedule_duration_is_not_an_internal_error": _negative_composite_duration,
}


def known_bug(version: str, text: str) -> str | None:
    """The name of the known bug ``text`` runs into, or None."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return next((name for name, hits in KNOWN_BUGS.items() if hits(version, msg)), None)
