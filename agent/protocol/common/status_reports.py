"""Connector statuses as state, not events: the CSMS is kept holding the status the station has now.

A status change is sent at once (StatusNotification in both versions). If that CALL fails (a
CALLERROR, no answer, an invalid answer) and nothing newer went out for the connector since, the
connector's status is sent again TransactionMessageRetryInterval x failures later (at most
MAX_RETRY_S), as it is THEN, not the one that failed; and not at all if the CSMS already confirmed
that one. What the CSMS last confirmed per connector is kept in the state store, so after a
reconnection :meth:`StatusReporting.resend_changed_statuses` sends only the connectors whose
status or error code changed meanwhile. A status is compared as its message without the timestamp,
so a change the version does not word differently (2.0.1 folds the session states into
Occupied) is not sent twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict

from agent.core.charging.model import ConnectorStatus
from agent.errors import CallErrorReceived, CallTimeout, InvalidResponse, StoreError

log = logging.getLogger("agent.ocpp")

#: {"<connector id>": message key} of the StatusNotification the CSMS last answered, per connector.
CONFIRMED_KEY = "ocpp:confirmed_statuses"
#: The longest wait before a refused status is sent again.
MAX_RETRY_S = 3600.0


def status_key(request) -> str:
    """What a StatusNotification says, without when: equal keys tell the CSMS the same thing."""
    fields = {name: value for name, value in asdict(request).items() if name != "timestamp"}
    return json.dumps(fields, sort_keys=True, default=str)


class StatusReporting:
    """Mixed into each version's adapter before AdapterBase: the CsmsPort's ``status_changed``.

    Uses the adapter's ``core``, ``clock``, ``settings``, ``call`` and ``spawn``, and the version's
    :meth:`status_request`. Per connection it knows what it sent last per connector (in flight or
    answered) and the retries it has scheduled; what the CSMS confirmed is in the store.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._status_sent: dict[int, str] = {}  # connector -> key of the last status put out on this connection
        self._status_failures: dict[int, int] = {}  # connector -> failed sends since its last confirmed one
        self._status_retries: dict[int, asyncio.Task] = {}  # connector -> its scheduled re-send
        self._confirmed: dict[str, str] | None = None  # CONFIRMED_KEY, read once per connection

    def status_request(self, evse_id: int, status: ConnectorStatus, error: str | None, *, timestamp: float):
        """The version's StatusNotification for a connector (0: the station), or None if it reports none."""
        raise NotImplementedError

    # ------------------------------------------------------------ entry points

    def status_changed(self, evse_id: int, status: ConnectorStatus, error: str | None) -> None:
        """CsmsPort: a connector's status changed; sent unless this connection already said the same."""
        self.report_status(evse_id, status, error)

    def report_status(self, evse_id: int, status: ConnectorStatus, error: str | None, *, force: bool = False) -> None:
        """Send a connector's status; ``force``: even if this connection already sent the same (a trigger)."""
        request = self.status_request(evse_id, status, error, timestamp=self.clock.time())
        if request is None:
            return
        if force or self._status_sent.get(evse_id) != status_key(request):
            self._send_status(evse_id, request)

    def resend_changed_statuses(self) -> None:
        """After a reconnection without a new boot: send the current status of every connector (and the
        station's) whose status or error code differs from what the CSMS last confirmed."""
        confirmed = self._confirmed_statuses()
        for evse_id, (status, error) in sorted(self.core.station.current_statuses().items()):
            request = self.status_request(evse_id, status, error, timestamp=self.clock.time())
            if request is not None and confirmed.get(str(evse_id)) != status_key(request):
                self._send_status(evse_id, request)

    # ------------------------------------------------------------ sending and retrying

    def _send_status(self, evse_id: int, request) -> None:
        key = status_key(request)
        self._status_sent[evse_id] = key
        retry = self._status_retries.pop(evse_id, None)
        if retry is not None:
            retry.cancel()  # this newer status supersedes it
        self.spawn(self._deliver_status(evse_id, request, key), name="status")

    async def _deliver_status(self, evse_id: int, request, key: str) -> None:
        try:
            await self.call(request)
        except (CallTimeout, CallErrorReceived, InvalidResponse) as exc:
            log.warning("StatusNotification of connector %d not delivered: %s", evse_id, exc)
            if self._status_sent.get(evse_id) == key:  # else a newer status went out and speaks for it
                self._schedule_status_retry(evse_id)
            return
        self._status_failures.pop(evse_id, None)
        self._confirm(evse_id, key)

    def _schedule_status_retry(self, evse_id: int) -> None:
        if evse_id in self._status_retries:
            return
        failures = self._status_failures[evse_id] = self._status_failures.get(evse_id, 0) + 1
        delay = min(self.settings["transaction_message_retry_interval_s"] * failures, MAX_RETRY_S)
        self._status_retries[evse_id] = self.spawn(self._retry_status(evse_id, delay), name="status-retry")

    async def _retry_status(self, evse_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        self._status_retries.pop(evse_id, None)
        current = self.core.station.current_statuses().get(evse_id)
        if current is None:
            return
        request = self.status_request(evse_id, *current, timestamp=self.clock.time())
        if request is not None and self._confirmed_statuses().get(str(evse_id)) != status_key(request):
            log.info("sending the status of connector %d again, as it is now", evse_id)
            self._send_status(evse_id, request)

    # ------------------------------------------------------------ what the CSMS confirmed

    def _confirmed_statuses(self) -> dict[str, str]:
        if self._confirmed is None and self.core is None:
            self._confirmed = {}  # a bare protocol session keeps nothing
        if self._confirmed is None:
            try:
                self._confirmed = dict(self.core.store.get(CONFIRMED_KEY, {}))
            except StoreError as exc:  # unknown: every status counts as changed, which only sends more
                log.warning("confirmed statuses unreadable: %s", exc)
                self._confirmed = {}
        return self._confirmed

    def _confirm(self, evse_id: int, key: str) -> None:
        confirmed = self._confirmed_statuses()
        if confirmed.get(str(evse_id)) == key:
            return
        confirmed[str(evse_id)] = key
        if self.core is None:
            return
        try:
            self.core.store.put(CONFIRMED_KEY, confirmed)
        except StoreError as exc:  # kept for this connection; the next one may send it again, harmlessly
            log.warning("confirmed status of connector %d not stored: %s", evse_id, exc)
