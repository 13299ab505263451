"""What the station holds about one customer, reported and erased on request (OCPP 2.0.1 N09/N10).

A customer is named by an idToken, a customerIdentifier or a customer
certificate. About an idToken the station holds its authorization cache
entries, its local authorization list entry and the message log frames that
carry it; about a customerIdentifier, the message log frames that carry it;
about a certificate, nothing (no contract certificates are stored here).

Clearing deletes the cache entries and the frames. The local list entry is
reported but kept: the list is the CSMS's own, changed only with SendLocalList
so that its version keeps meaning something (N10.FR.02/03).

The report lines never repeat the identifier: the messages carrying them are
logged too, and a cleared customer must not come back into the log that way.
The CSMS's CustomerInformation requests naming the customer are not reported
(they are the question, not the station's data) but are erased on clear.

Not covered: the transaction journal and reservations keep the idToken they
were made with (records the CSMS may still be owed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from agent.runtime.clock import format_iso

DATA_MAX_CHARS = 512  # NotifyCustomerInformation.data
LOG_FRAMES_LISTED = 20  # newest frames listed one by one; older ones are only counted
TOKEN_KEYS = frozenset({"idToken", "idTag", "parentIdTag"})  # JSON keys carrying an idToken (2.0.1, 1.6)
IDENTIFIER_KEYS = frozenset({"customerIdentifier"})
NO_DATA = "no data held about this customer"
REQUEST_ACTION = "CustomerInformation"


@dataclass(frozen=True)
class Customer:
    """Who the CSMS asks about: any of an idToken (with its type), a customerIdentifier, a certificate."""

    id_token: str | None = None
    token_type: str | None = None
    identifier: str | None = None
    certificate: dict | None = None  # CertificateHashDataType fields

    @property
    def named(self) -> bool:
        """True when at least one identifier is given (a request without one is refused)."""
        return bool(self.id_token or self.identifier or self.certificate)


class CustomerInformation:
    """Reports and clears one customer's data in the authorization cache, local list and message log.

    ``cache`` is an ``agent.core.charging.auth.AuthorizationCache``, ``local_list`` an
    ``agent.core.charging.local_list.LocalAuthorizationList`` and ``message_log`` an
    ``agent.runtime.message_log.MessageLog``; the last two may be None (not on this station).
    """

    def __init__(self, *, cache, local_list=None, message_log=None) -> None:
        self._cache = cache
        self._local_list = local_list
        self._log = message_log

    def handle(self, customer: Customer, *, report: bool, clear: bool) -> list[str]:
        """Human-readable lines: what is held (``report``) and what was deleted (``clear``); never empty.

        Everything is gathered before anything is deleted, so a report with
        clear shows the data as it was.
        """
        lines: list[str] = []
        if customer.id_token:
            lines += self._token(customer, report=report, clear=clear)
        if customer.identifier:
            lines += self._frames(customer.identifier, IDENTIFIER_KEYS, report=report, clear=clear)
        if customer.certificate and report:
            lines.append("customer certificate: none held (this station stores no contract certificates)")
        return lines or [NO_DATA]

    def _token(self, customer: Customer, *, report: bool, clear: bool) -> list[str]:
        token = customer.id_token
        cached = self._cache.entries_for(token)
        listed = self._local_list.lookup(token, customer.token_type) if self._local_list is not None else None
        lines = []
        if report:
            lines += [f"authorization cache: {_describe(info)}" + (f", as {kind}" if kind else "")
                      for kind, info in cached]
            if listed is not None:
                lines.append(f"local authorization list: {_describe(listed)}")
        lines += self._frames(token, TOKEN_KEYS, report=report, clear=clear)
        if clear:
            removed = self._cache.forget(token) if cached else 0
            if removed:
                lines.append(f"cleared: {removed} authorization cache {'entry' if removed == 1 else 'entries'}")
            if listed is not None:
                lines.append("kept: the local authorization list entry (the CSMS updates its list with SendLocalList)")
        return lines

    def _frames(self, value: str, keys: frozenset[str], *, report: bool, clear: bool) -> list[str]:
        """The message log frames carrying ``value`` under one of ``keys``: listed, and deleted on clear."""
        if self._log is None:
            return []
        carries = partial(_carries, value=value.upper(), keys=keys)
        # grep finds the candidates in SQL; parsing each one rules out the value inside another string.
        carrying = [f for f in self._log.query(grep=value, limit=None) if carries(f.frame)]
        # The CSMS's own CustomerInformation requests are its question, not data about the customer:
        # not reported, but erased with the rest.
        frames = [f for f in carrying if f.action != REQUEST_ACTION]
        lines = []
        if report and frames:
            lines.append(f"message log: {len(frames)} frames carry it, from {format_iso(frames[-1].timestamp)}"
                         f" to {format_iso(frames[0].timestamp)}")
            lines += [f"  {format_iso(f.timestamp)} {f.direction} {f.action or '(no action)'}"
                      for f in frames[:LOG_FRAMES_LISTED]]
            if len(frames) > LOG_FRAMES_LISTED:
                lines.append(f"  and {len(frames) - LOG_FRAMES_LISTED} older frames")
        if clear and carrying:
            self._log.delete_matching(value, also=carries)
            if frames:
                lines.append(f"cleared: {len(frames)} message log frames")
        return lines


def pack(lines: list[str], *, limit: int = DATA_MAX_CHARS) -> list[str]:
    """Lines joined by newlines into as few parts of at most ``limit`` characters as they fit in."""
    parts: list[str] = []
    for line in lines:
        while len(line) > limit:  # a line longer than a whole part is cut
            parts.append(line[:limit])
            line = line[limit:]
        if parts and len(parts[-1]) + 1 + len(line) <= limit:
            parts[-1] += "\n" + line
        else:
            parts.append(line)
    return parts


def _describe(info) -> str:
    text = f"status {info.status.value}"
    if info.expiry is not None:
        text += f", expires {format_iso(info.expiry)}"
    if info.group_id:
        text += f", group {info.group_id}"
    return text


def _carries(frame: str, *, value: str, keys: frozenset[str]) -> bool:
    """Does the JSON ``frame`` hold ``value`` (upper case; compared ignoring case) under one of ``keys``?"""
    try:
        parsed = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return _holds(parsed, value, keys)


def _holds(node: Any, value: str, keys: frozenset[str]) -> bool:
    if isinstance(node, dict):
        return any((key in keys and isinstance(item, str) and item.upper() == value) or _holds(item, value, keys)
                   for key, item in node.items())
    if isinstance(node, list):
        return any(_holds(item, value, keys) for item in node)
    return False
