"""OCPP 1.6 configuration keys over the station settings, without protocol types.

The 1.6 adapter's GetConfiguration and ChangeConfiguration handlers are thin
wrappers around :class:`ConfigurationService`: it finds keys (case-insensitively,
since 1.6 keys are CiString50Type), renders values as OCPP strings and decides
the ChangeConfiguration status. Values live only in :class:`agent.runtime.settings.Settings`.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from agent.runtime.settings import SettingDef, Settings, render_setting

log = logging.getLogger(__name__)

_MAX_KEYS = "getconfigurationmaxkeys"  # lower-cased, as in the key index


class ChangeResult(str, enum.Enum):
    """The outcome of a ChangeConfiguration (values are the OCPP 1.6 ConfigurationStatus)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


@dataclass(frozen=True)
class KeyValue:
    """One reported configuration key; ``value`` is None for a secret setting."""

    key: str
    value: str | None
    readonly: bool


class TooManyKeysError(ValueError):
    """A GetConfiguration named more keys than GetConfigurationMaxKeys allows."""

    def __init__(self, requested: int, limit: int):
        super().__init__(f"{requested} keys requested, GetConfigurationMaxKeys is {limit}")
        self.requested = requested
        self.limit = limit


class ConfigurationService:
    """GetConfiguration / ChangeConfiguration semantics of OCPP 1.6 over ``Settings``."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._by_key = {s.ocpp16.lower(): s for s in settings.catalog if s.ocpp16}

    def get_ocpp16(self, keys: list[str] | None = None) -> tuple[list[KeyValue], list[str]]:
        """Known keys with their values, and the requested keys that are unknown.

        No keys (None or empty) means every 1.6 key, in catalog order. Named keys
        are answered in request order, each once, in canonical spelling; unknown
        ones are returned as sent, each once. GetConfigurationMaxKeys bounds the
        number of keys a request may name (all entries, repeats included, as sent
        in the PDU); asking for all keys is not bounded by it, since the station,
        not the request, decides that size. Raises TooManyKeysError over the limit:
        the 1.6 response has no status to refuse with, and answering a subset
        would misreport known keys, so the adapter answers with a CALLERROR
        (OccurenceConstraintViolation).
        """
        if not keys:
            return [self._key_value(d) for d in self._by_key.values()], []
        self._check_key_count(len(keys))
        found: dict[str, SettingDef] = {}
        unknown: dict[str, str] = {}
        for key in keys:
            definition = self._by_key.get(key.lower())
            if definition is not None:
                found.setdefault(definition.name, definition)
            else:
                unknown.setdefault(key.lower(), key)
        return [self._key_value(d) for d in found.values()], list(unknown.values())

    def _check_key_count(self, requested: int) -> None:
        limit_def = self._by_key.get(_MAX_KEYS)
        if limit_def is None:
            return  # a catalog without the key sets no limit
        limit = self._settings[limit_def.name]
        if requested > limit:
            raise TooManyKeysError(requested, limit)

    def _key_value(self, definition: SettingDef) -> KeyValue:
        if definition.secret:
            value = None
        else:
            value = render_setting(definition, self._settings[definition.name])
        return KeyValue(definition.ocpp16, value, definition.readonly)

    def change_ocpp16(self, key: str, value: str) -> ChangeResult:
        """Apply a ChangeConfiguration: validate, persist, and report the 1.6 status.

        Unknown key: NOT_SUPPORTED. Read-only key or a value that does not fit
        (type, bounds, list items): REJECTED, and nothing is stored. Otherwise the
        value is persisted and applied: REBOOT_REQUIRED for settings that only
        take effect after a reboot, else ACCEPTED. A state-store failure is
        raised (StoreError), not reported as REJECTED: it is not the CSMS's fault.
        """
        definition = self._by_key.get(key.lower())
        if definition is None:
            log.info("ChangeConfiguration %s: not supported", key)
            return ChangeResult.NOT_SUPPORTED
        if definition.readonly:
            log.info("ChangeConfiguration %s: rejected, read-only", definition.ocpp16)
            return ChangeResult.REJECTED
        try:
            # set() validates (type, bounds, and the setting's guard, e.g. SecurityProfile only up)
            # before it stores anything.
            self._settings.set(definition.name, value)
        except ValueError as exc:
            # The reason may quote the value, so a secret's is left out too.
            reason = "invalid value" if definition.secret else f"{value!r}: {exc}"
            log.info("ChangeConfiguration %s: rejected, %s", definition.ocpp16, reason)
            return ChangeResult.REJECTED
        return ChangeResult.REBOOT_REQUIRED if definition.reboot_required else ChangeResult.ACCEPTED
