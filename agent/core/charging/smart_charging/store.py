"""The installed charging profiles, persisted in the state store.

A thin layer: it keeps the profiles in memory for the engine and writes the
whole list back through ``store.put`` after every change (a handful of
profiles, so one JSON value is simpler and as durable as a table).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from agent.core.charging.smart_charging.model import (
    TX_PROFILE,
    ChargingProfile,
    profile_from_json,
    profile_to_json,
)

log = logging.getLogger("agent.smart_charging")

_KEY = "station:charging_profiles"


class ProfileStore:
    """Installed charging profiles by id; ``store`` is any object with ``get(key)`` / ``put(key, value)``."""

    def __init__(self, store):
        self._store = store
        saved = store.get(_KEY) or []
        self._by_id: dict[int, ChargingProfile] = {p.profile_id: p for p in map(profile_from_json, saved)}

    def __iter__(self) -> Iterator[ChargingProfile]:
        return iter(sorted(self._by_id.values(), key=lambda p: p.profile_id))

    def __len__(self) -> int:
        return len(self._by_id)

    def install(self, profile: ChargingProfile) -> list[ChargingProfile]:
        """Add ``profile`` (already validated); returns the profiles it replaced.

        OCPP 1.6 §5.16.1 / 2.0.1 K01.FR.05: a profile with the same id, or with the
        same stack level and purpose on the same EVSE, is replaced.
        """
        replaced = [p for p in self if p.profile_id == profile.profile_id or _same_slot(p, profile)]
        for old in replaced:
            del self._by_id[old.profile_id]
        self._by_id[profile.profile_id] = profile
        self._save()
        log.info("charging profile %d installed (%s, EVSE %d, stack %d)%s", profile.profile_id,
                 profile.purpose, profile.evse_id, profile.stack_level,
                 f", replacing {[p.profile_id for p in replaced]}" if replaced else "")
        return replaced

    def update(self, profile: ChargingProfile) -> None:
        """Put a changed version of an installed profile (same id: a Dynamic profile's new limit) in its
        place and persist it; nothing is replaced besides."""
        if profile.profile_id not in self._by_id:
            raise KeyError(profile.profile_id)
        self._by_id[profile.profile_id] = profile
        self._save()

    def clear(self, *, profile_id: int | None = None, evse_id: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> bool:
        """ClearChargingProfile: True when at least one profile was removed.

        With ``profile_id`` only that profile goes and the other fields are
        ignored (1.6 §5.5); otherwise every profile matching all given fields
        goes, so no field at all clears everything.
        """
        if profile_id is not None:
            doomed = [p for p in self if p.profile_id == profile_id]
        else:
            doomed = self.list(evse_id=evse_id, purpose=purpose, stack_level=stack_level)
        return self._remove(doomed, "cleared")

    def list(self, *, evse_id: int | None = None, purpose: str | None = None,
             stack_level: int | None = None) -> list[ChargingProfile]:
        """The installed profiles matching every given field (all of them when none is given)."""
        return [p for p in self
                if (evse_id is None or p.evse_id == evse_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)]

    def end_transaction(self, transaction_ref: str) -> list[ChargingProfile]:
        """Drop the TxProfiles of a finished transaction (they end with it); returns them."""
        doomed = [p for p in self if p.purpose == TX_PROFILE and p.transaction_ref == transaction_ref]
        self._remove(doomed, "ended with its transaction")
        return doomed

    def _remove(self, doomed: list[ChargingProfile], why: str) -> bool:
        """Forget ``doomed`` and persist; True if there was anything to forget."""
        for profile in doomed:
            del self._by_id[profile.profile_id]
            log.info("charging profile %d %s", profile.profile_id, why)
        if doomed:
            self._save()
        return bool(doomed)

    def _save(self) -> None:
        self._store.put(_KEY, [profile_to_json(p) for p in self])


def _same_slot(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Two profiles competing for the same stack level, purpose and EVSE."""
    return (a.stack_level, a.purpose, a.evse_id) == (b.stack_level, b.purpose, b.evse_id)
