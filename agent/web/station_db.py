"""What the dashboard shows from the state store (``<data_dir>/state.sqlite``), read-only, and the
running configuration with every secret masked.

The store belongs to the daemon; the web process opens it ``mode=ro`` per request and reads the
transaction journal (agent.core.charging.transactions: table ``transactions``), the outbox (a
transaction's records wait there, grouped by its ref, until the CSMS answered them) and the persisted
OCPP settings (kv ``setting:<name>``, agent.runtime.settings).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.runtime.message_log import REDACTED
from agent.runtime.message_log import is_secret_name  # one rule for what a secret is
from agent.runtime.settings import Settings, render_setting
from agent.runtime.store import connect_readonly

STORE_FILE = "state.sqlite"  # as the daemon names it (agent/app.py)
SESSIONS_SHOWN = 200
TOKEN_SHOWN = 4  # characters of an idToken shown: enough to tell cards apart, not to copy one


def _connect(data_dir: Path | str) -> sqlite3.Connection | None:
    path = Path(data_dir) / STORE_FILE
    if not path.is_file():
        return None
    return connect_readonly(path)


def read_sessions(data_dir: Path | str, *, limit: int = SESSIONS_SHOWN) -> list[dict]:
    """The newest transactions of the journal, newest first, as JSON-ready dicts.

    ``acknowledged`` is true once no record of the transaction waits in the outbox (the CSMS answered
    them all); ``pending`` names the records still waiting.
    """
    conn = _connect(data_dir)
    if conn is None:
        return []
    try:
        rows = conn.execute(
            "SELECT ref, evse_id, id_token, started_at, meter_start_Wh, remote_id, last_meter_Wh, stopped_at, "
            "meter_stop_Wh, stop_reason FROM transactions ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()
        pending: dict[str, list[str]] = {}
        for group, action in conn.execute("SELECT grp, action FROM outbox WHERE grp IS NOT NULL ORDER BY id"):
            pending.setdefault(group, []).append(action)
    except sqlite3.OperationalError:  # a store the daemon has not migrated this far yet
        return []
    finally:
        conn.close()
    return [_session(row, pending.get(row[0], [])) for row in rows]


def _session(row: tuple, pending: list[str]) -> dict:
    ref, evse_id, token, started, meter_start, remote_id, last_meter, stopped, meter_stop, reason = row
    end_meter = meter_stop if meter_stop is not None else last_meter
    return {
        "transaction_id": remote_id or ref,
        "evse_id": evse_id,
        "started_at": iso_utc(started),
        "stopped_at": iso_utc(stopped) if stopped is not None else None,
        "duration_s": round(stopped - started, 1) if stopped is not None else None,
        "energy_Wh": round(max(end_meter - meter_start, 0.0), 1),
        "token": shorten_token(token),
        "stop_reason": reason,
        "acknowledged": not pending,
        "pending": pending,
    }


def shorten_token(token: str) -> str | None:
    """The first characters of an idToken and an ellipsis; None for a transaction without one."""
    if not token:
        return None
    return token if len(token) <= TOKEN_SHOWN else token[:TOKEN_SHOWN] + "…"


def iso_utc(timestamp: float) -> str:
    """A unix time as ISO 8601 UTC (seconds, Z)."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class _ReadOnlyKv:
    """The ``get`` of a StateStore over a read-only connection, as Settings needs it."""

    def __init__(self, data_dir: Path | str) -> None:
        self._values: dict[str, Any] = {}
        conn = _connect(data_dir)
        if conn is None:
            return
        try:
            rows = conn.execute("SELECT key, value FROM kv WHERE key LIKE 'setting:%'").fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            conn.close()
        self._values = {key: json.loads(value) for key, value in rows}

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value of ``key``, or ``default``."""
        return self._values.get(key, default)


def read_settings(data_dir: Path | str, config) -> list[tuple[str, str]]:
    """The OCPP settings in force, by their name in the version in use, secrets masked.

    Precedence as the daemon's: a value the CSMS set (the store) over the config file over the default.
    Read-only settings are left out: the running station supplies them, the files do not hold them.
    """
    version = config.csms.ocpp_version
    settings = Settings(_ReadOnlyKv(data_dir), initial=config.initial_settings, ocpp_version=version)
    shown = []
    for definition in settings.catalog:
        name = definition.ocpp16 if version == "1.6" else definition.ocpp201
        if name is None or definition.readonly:
            continue
        secret = definition.secret or is_secret_name(name) or is_secret_name(definition.name)
        shown.append((name, REDACTED if secret else render_setting(definition, settings[definition.name])))
    return sorted(shown, key=lambda item: item[0].lower())


def masked_config(config) -> list[tuple[str, str]]:
    """The loaded configuration as (key path, value) pairs, every secret value shown as ``***``."""
    pairs: list[tuple[str, str]] = []
    for f in fields(config):
        if f.name != "source":
            _flatten(f.name, getattr(config, f.name), pairs)
    return pairs


def _flatten(path: str, value: Any, pairs: list[tuple[str, str]]) -> None:
    name = path.rsplit(".", 1)[-1].split("[", 1)[0]
    if is_dataclass(value):
        for f in fields(value):
            _flatten(f"{path}.{f.name}", getattr(value, f.name), pairs)
    elif isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{path}.{key}", item, pairs)
    elif isinstance(value, tuple) and value and all(is_dataclass(item) for item in value):
        for index, item in enumerate(value):
            _flatten(f"{path}[{index}]", item, pairs)
    elif is_secret_name(name) and value not in ("", None):
        pairs.append((path, REDACTED))
    else:
        pairs.append((path, _render(strip_credentials(value) if name == "url" else value)))


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, tuple):
        return json.dumps(list(value), ensure_ascii=False, default=str)
    return str(value)


def strip_credentials(url: Any) -> Any:
    """``url`` without a ``user:password@`` part (a CSMS URL may carry Basic credentials)."""
    if not isinstance(url, str) or "@" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
