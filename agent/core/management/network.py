"""Where and how the station connects: network connection profiles and the security profile.

Version-neutral. The config file's ``[csms]`` section is configuration slot 0.
An OCPP 2.0.1 CSMS adds slots with SetNetworkProfile and orders them with
``OCPPCommCtrlr.NetworkConfigurationPriority``; the station tries the first,
and after ``NetworkProfileConnectionAttempts`` failed connections moves on to
the next one, round the list. An OCPP 1.6 CSMS raises the security profile
with the SecurityProfile key.

The security profile only ever goes up (a downgrade would let an attacker who
can reach the CSMS's network strip TLS), and only when the station has what the
new profile needs: a password for 1 and 2, a trusted CSMS root for 2 and 3,
and a client certificate for 3. A raised profile is *pending* until a
connection with it was accepted; if the station cannot connect with it after
``NetworkProfileConnectionAttempts`` tries, it goes back to the previous one
rather than staying unreachable (and records a security event).

Slots and the pending state live in the state store, so a reboot keeps them.
The operator's config file stays the authority for slot 0: when its security
profile is edited, the CSMS's raise of the previous value is forgotten.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Callable
from urllib.parse import urlsplit

log = logging.getLogger("agent.network")

SLOTS_KEY = "network:slots"
PENDING_KEY = "network:pending_security_profile"  # {"profile": new, "previous": old}
CONFIG_PROFILE_KEY = "network:config_security_profile"
SETTING_KEY = "setting:security_profile"  # where agent.runtime.settings persists the CSMS-set value
CONFIG_SLOT = 0
MAX_SLOT = 7


@dataclass(frozen=True)
class ConnectionProfile:
    """One way to reach a CSMS. ``url`` is the CSMS URL without the station identity (2.0.1 ocppCsmsUrl)."""

    slot: int
    url: str
    security_profile: int
    message_timeout_s: float
    ocpp_version: str = ""  # "" = the version this agent speaks

    @classmethod
    def from_config(cls, csms) -> "ConnectionProfile":
        """Slot 0: the config file's [csms] section (an ``agent.config.CsmsConfig``)."""
        return cls(slot=0, url=csms.url, security_profile=csms.security_profile,
                   message_timeout_s=csms.response_timeout_s)

    def endpoint(self, station_id: str) -> str:
        """The WebSocket URL: ``url`` with the identity appended, and wss:// whenever TLS is required.

        A 1.6 CSMS raising a plain-text connection to profile 2 has no way to send a new URL,
        so the station keeps host, port and path and changes only the scheme.
        """
        url = self.url.rstrip("/")
        if self.security_profile >= 2 and url.startswith("ws://"):
            url = "wss://" + url[len("ws://"):]
        return f"{url}/{station_id}"


class ProfileRefused(ValueError):
    """A profile or security-profile change the station cannot take; the message says why."""


class NetworkProfiles:
    """The connection profiles, which one is in use, and the security-profile rules.

    ``can_trust_csms()``, ``has_client_certificate()`` and ``has_password()`` tell
    what the station has right now (installed roots, a signed station certificate,
    a configured or CSMS-set password); they are asked when a change is requested.
    """

    def __init__(self, store, settings, *, config_profile: ConnectionProfile,
                 can_trust_csms: Callable[[], bool], has_client_certificate: Callable[[], bool],
                 has_password: Callable[[], bool], on_security_event: Callable[[str], None] | None = None):
        self._store = store
        self._settings = settings
        self._config_profile = config_profile
        self._can_trust_csms = can_trust_csms
        self._has_client_certificate = has_client_certificate
        self._has_password = has_password
        self._on_security_event = on_security_event
        self._failures = 0
        self._position = 0  # index into the priority list of the slot being tried
        settings.guard("security_profile", self._check_raise)

    @staticmethod
    def forget_stale_raise(store, config_security_profile: int) -> bool:
        """Drop a CSMS raise made on top of a config value that has since changed; True if it did.

        Called before the settings load, and on a config reload (the caller then restores the setting).
        """
        stale = store.get(CONFIG_PROFILE_KEY) not in (None, config_security_profile)
        if stale:
            log.warning("csms.security_profile changed in the config file to %d: it replaces the value the "
                        "CSMS had set", config_security_profile)
            store.delete(SETTING_KEY)
            store.delete(PENDING_KEY)
        store.put(CONFIG_PROFILE_KEY, config_security_profile)
        return stale

    def reconfigure(self, config_profile: ConnectionProfile) -> None:
        """The config file was reloaded: slot 0 is its new [csms] section, and its security profile rules."""
        if self.forget_stale_raise(self._store, config_profile.security_profile):
            self._settings.restore("security_profile", config_profile.security_profile)
        self._config_profile = config_profile
        self._failures = 0

    # ------------------------------------------------------------ queries

    @property
    def security_profile(self) -> int:
        """The security profile in force (the lowest any connection may use)."""
        return self._settings["security_profile"]

    def slots(self) -> dict[int, ConnectionProfile]:
        """Every configured slot: 0 from the config file (at the current security profile), then the CSMS's."""
        found = {CONFIG_SLOT: replace(self._config_profile, security_profile=self.security_profile)}
        for slot, data in (self._store.get(SLOTS_KEY) or {}).items():
            found[int(slot)] = ConnectionProfile(**data)
        return found

    def priority(self) -> list[int]:
        """The slots to try, in order: NetworkConfigurationPriority without the slots that hold nothing."""
        slots = self.slots()
        order = [int(item) for item in self._settings["network_configuration_priority"] if int(item) in slots]
        return order or [CONFIG_SLOT]

    def current(self) -> ConnectionProfile:
        """The profile the next connection attempt uses."""
        order = self.priority()
        return self.slots()[order[self._position % len(order)]]

    # ------------------------------------------------------------ connection outcomes

    def connect_failed(self) -> None:
        """A connection attempt with ``current()`` failed: count it, and fall back when it is time."""
        self._failures += 1
        if self._failures < self._settings["network_profile_connection_attempts"]:
            return
        self._failures = 0
        pending = self._store.get(PENDING_KEY)
        if pending is not None:
            self._revert(pending)
            return
        order = self.priority()
        if len(order) > 1:
            self._position = (self._position + 1) % len(order)
            log.warning("cannot reach the CSMS through slot %d; trying slot %d", order[self._position - 1],
                        order[self._position])

    def accepted(self) -> None:
        """The CSMS accepted a connection with ``current()``: a pending raise is now final."""
        self._failures = 0
        if self._store.get(PENDING_KEY) is not None:
            self._store.delete(PENDING_KEY)
            log.info("security profile %d confirmed by the CSMS", self.security_profile)
        in_use = self.current().security_profile
        if in_use > self.security_profile:
            # A 2.0.1 slot with a higher profile connected: from now on nothing lower is acceptable.
            self._settings.restore("security_profile", in_use)

    # ------------------------------------------------------------ changes

    def set_slot(self, slot: int, profile: ConnectionProfile) -> None:
        """Store a CSMS-given profile (2.0.1 SetNetworkProfile); ProfileRefused says why not."""
        if not 0 < slot <= MAX_SLOT:
            raise ProfileRefused(f"configuration slot must be 1-{MAX_SLOT} (slot 0 is the config file's)")
        if slot == self.current().slot:
            raise ProfileRefused(f"slot {slot} is the connection in use")
        scheme = urlsplit(profile.url).scheme
        if scheme not in ("ws", "wss") or not urlsplit(profile.url).hostname:
            raise ProfileRefused(f"not a WebSocket URL: {profile.url!r}")
        if scheme == "wss" and profile.security_profile < 2 or scheme == "ws" and profile.security_profile >= 2:
            raise ProfileRefused(f"security profile {profile.security_profile} does not go with a {scheme}:// URL")
        self._check_prerequisites(profile.security_profile)
        slots = dict(self._store.get(SLOTS_KEY) or {})
        slots[str(slot)] = asdict(replace(profile, slot=slot))
        self._store.put(SLOTS_KEY, slots)
        log.info("network profile slot %d set: %s, security profile %d", slot, profile.url, profile.security_profile)

    def _check_raise(self, current: int, new: int) -> None:
        """Settings guard of ``security_profile``: only up, only with what the new profile needs."""
        if new == current:
            return  # nothing changes
        self._check_prerequisites(new, current=current)
        # Remembered before the value is stored: if the station cannot connect with it, it goes back.
        self._store.put(PENDING_KEY, {"profile": new, "previous": current})

    def _check_prerequisites(self, profile: int, *, current: int | None = None) -> None:
        current = self.security_profile if current is None else current
        if profile < current:
            raise ProfileRefused(f"security profile {profile} is lower than the one in use ({current})")
        if profile in (1, 2) and not self._has_password():
            raise ProfileRefused(f"security profile {profile} needs a Basic auth password")
        if profile >= 2 and not self._can_trust_csms():
            raise ProfileRefused(f"security profile {profile} needs an installed CSMS root certificate")
        if profile == 3 and not self._has_client_certificate():
            raise ProfileRefused("security profile 3 needs a station certificate")

    def _revert(self, pending: dict) -> None:
        """The raised profile never connected: go back to the one that did (bypassing the guard)."""
        previous = pending["previous"]
        log.error("cannot connect with security profile %d; going back to %d", pending["profile"], previous)
        self._store.delete(PENDING_KEY)
        self._settings.restore("security_profile", previous)
        if self._on_security_event is not None:
            self._on_security_event(f"security profile {pending['profile']} failed to connect; back to {previous}")
