"""The CSMS session: connect, serve, and reconnect with randomized back-off, forever.

One connection at a time. Each connection gets a fresh protocol adapter (the
library's ChargePoint is per connection); what must outlive a connection (the
settings, the clock, the outbox, the boot the CSMS accepted) lives outside it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from agent.config import AgentConfig
from agent.runtime.liveness import TICK_S
from agent.errors import ConnectFailed, ConnectionLost
from agent.link.transport import TransportOptions, WebSocketConnection, display_url
from agent.runtime.backoff import backoff_delays

log = logging.getLogger("agent.session")
#: On a stop on purpose, how long the CSMS may take to answer the record in flight before the socket closes
#: (outputs are already safe by then; a CSMS normally answers in milliseconds).
SETTLE_S = 2.0


class CsmsSession:
    """Keeps the station connected to its CSMS and hands each connection to an adapter."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        adapter_factory: Callable,
        settings,
        on_frame: Callable[[str, str], None] | None = None,
        ticker=None,
        station_certificate=None,
        network=None,
        trust: Callable[[str], str] | None = None,
        on_security_event: Callable[[str, str], None] | None = None,
        boot=None,
    ):
        self._config = config
        # agent.protocol.common.boot.BootRecord: handed to every adapter, so that a reconnection resumes on
        # the boot the CSMS accepted instead of booting again; told when the agent stops on purpose.
        self._boot = boot
        # agent.core.management.station_certificate.StationCertificate: the CSMS-signed client certificate, if any.
        self._station_certificate = station_certificate
        # agent.core.management.network.NetworkProfiles: which URL and security profile to use (None: the config's).
        self._network = network
        # trust(config ca_file) -> the CA file for the CSMS's certificate, asked at each connection
        # (the CSMS may install roots).
        self._trust = trust
        # on_security_event(kind, tech_info): a connect failure that is a security event (once per streak).
        self._on_security_event = on_security_event
        self._reported_failure: str | None = None
        self._adapter_factory = adapter_factory
        self._settings = settings
        self._on_frame = on_frame
        self._ticker = ticker
        self.adapter = None
        self.connection: WebSocketConnection | None = None
        self.connected = asyncio.Event()
        self._stopping = False
        self._listeners: list[Callable[[bool, str], None]] = []

    def add_listener(self, changed: Callable[[bool, str], None]) -> None:
        """Call ``changed(up, url)`` when a connection opens (True) and when it ends (False).

        Listeners run on the event loop and must be quick; an exception is logged, not raised.
        """
        self._listeners.append(changed)

    def _tell(self, up: bool, url: str) -> None:
        for changed in list(self._listeners):
            try:
                changed(up, url)
            except Exception:  # a status display must never cost the station its connection
                log.exception("connection listener %r failed", changed)

    def transport_options(self) -> TransportOptions:
        """Transport options from the config file and the live settings."""
        csms = self._config.csms
        installed = self._station_certificate.client_files() if self._station_certificate is not None else None
        client_cert_file, client_key_file = installed or (csms.client_cert_file, csms.client_key_file)
        profile = self._network.current() if self._network is not None else None
        return TransportOptions(
            url=profile.endpoint(self._config.station.id) if profile else self._config.endpoint_url,
            subprotocol=self._adapter_factory.subprotocol,
            station_id=self._config.station.id,
            security_profile=profile.security_profile if profile else csms.security_profile,
            # A password the CSMS set (AuthorizationKey / BasicAuthPassword) wins over the config file's,
            # from the next connection.
            password=self._settings["basic_auth_password"] or csms.password,
            ca_file=self._trust(csms.ca_file) if self._trust is not None else csms.ca_file,
            # Profile 3: the certificate the CSMS signed (once installed) wins over the config file's.
            client_cert_file=client_cert_file,
            client_key_file=client_key_file,
            connect_timeout_s=csms.connect_timeout_s,
            ping_interval_s=float(self._settings["websocket_ping_interval_s"]),
            ping_timeout_s=csms.ping_timeout_s,
        )

    async def run(self) -> None:
        """Connect and serve until ``stop()``; never raises for network trouble."""
        delays = None
        while not self._stopping:
            self._tick()
            try:
                connection = await WebSocketConnection.open(self.transport_options(), on_frame=self._on_frame)
            except ConnectFailed as exc:
                if self._network is not None:
                    self._network.connect_failed()
                self._report_security_failure(exc)
                delays = delays or self._backoff()
                delay = next(delays)
                log.warning("cannot connect to the CSMS: %s; retrying in %.1f s", exc, delay)
                await self._sleep(delay)
                continue
            delays = None
            self._reported_failure = None
            await self._serve(connection)

    async def _serve(self, connection: WebSocketConnection) -> None:
        self.connection = connection
        profile = self._network.current() if self._network is not None else None
        options = {"boot": self._boot} if self._boot is not None else {}
        if profile is not None:  # the profile's messageTimeout (slot 0: the config's response_timeout_s)
            options["response_timeout_s"] = profile.message_timeout_s
        self.adapter = self._adapter_factory(connection, **options)
        self.connected.set()
        self._tell(True, connection.url)
        log.info("connected to %s (%s)", display_url(connection.url), connection.subprotocol)
        try:
            await self.adapter.serve()
        except ConnectionLost:
            pass
        except Exception:
            log.exception("protocol session failed; reconnecting")
        finally:
            self.connected.clear()
            self._tell(False, connection.url)
            await connection.close()
            if not self._stopping:
                log.warning("connection to the CSMS ended: %s", connection.close_reason or "closed")

    def _report_security_failure(self, exc: ConnectFailed) -> None:
        """Record a refused certificate or password once per streak of failures, not at every retry:
        weeks offline behind a bad certificate must not fill the outbox with identical events."""
        kind = exc.security_event
        if kind is None or kind == self._reported_failure or self._on_security_event is None:
            return
        self._reported_failure = kind
        self._on_security_event(kind, str(exc))

    def _backoff(self):
        # At least 1 s: a misconfigured 0 must not turn into a tight reconnect loop.
        return backoff_delays(
            wait_minimum_s=max(1, self._settings["retry_backoff_wait_minimum_s"]),
            random_range_s=self._settings["retry_backoff_random_range_s"],
            repeat_times=self._settings["retry_backoff_repeat_times"],
        )

    async def _sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping and loop.time() < deadline:
            self._tick()
            await asyncio.sleep(min(deadline - loop.time(), TICK_S))

    def _tick(self) -> None:
        if self._ticker is not None:
            self._ticker.tick()

    def reconfigure(self, config: AgentConfig) -> None:
        """Use new CSMS settings: drop the current connection so the next one uses them."""
        self._config = config
        if self._network is not None:
            from agent.core.management.network import ConnectionProfile

            self._network.reconfigure(ConnectionProfile.from_config(config.csms))
        self.reconnect()

    def reconnect(self) -> None:
        """Drop the current connection; the next one is made with the current profiles and settings.

        When a CSMS request caused this, its answer goes out first.
        """
        connection = self.connection
        if connection is None or connection.closed:
            return

        def close() -> None:
            asyncio.ensure_future(connection.close())

        if self.adapter is not None and self.connected.is_set():
            self.adapter.after_reply(close)
        else:
            close()

    async def stop(self) -> None:
        """Close the connection with a close frame; ``run()`` then returns. A stop on purpose: the next
        start boots with LocalReset (unless a reset or an install set its reason)."""
        self._stopping = True
        if self._boot is not None:
            self._boot.controlled_stop()
        if self.adapter is not None and self.connected.is_set():
            await self.adapter.settle(timeout=SETTLE_S)
        if self.connection is not None:
            await self.connection.close()
