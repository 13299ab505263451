"""Diagnostics: pack the message log, the agent log and the redacted config; upload it.

Version-neutral: the 1.6 adapter maps this onto GetDiagnostics /
DiagnosticsStatusNotification (statuses Uploading, Uploaded, UploadFailed, Idle);
2.0.1's GetLog maps onto the same two functions.

Both functions block (SQLite, files, sockets): call them through ``asyncio.to_thread``
or use :func:`upload_with_retries`.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import json
import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

from agent.core.firmware import TRANSFER_TIMEOUT_S, TransferError, ftp_client, safe_url, with_retries
from agent.errors import StoreError
from agent.msglog import REDACTED, MessageLog, redact

log = logging.getLogger(__name__)

IDLE, UPLOADING, UPLOADED, UPLOAD_FAILED = "Idle", "Uploading", "Uploaded", "UploadFailed"

MESSAGE_LOG = "messages.sqlite"

# `basic_auth_password = "x"` or `password: x`: the same secret words the message log redacts.
_SECRET_LINE = re.compile(
    r"^(?P<key>\s*[\"']?[\w.-]*(?:password|passwd|secret|private_?key|authorization_?key)[\w.-]*[\"']?\s*[=:]\s*)"
    r"(?P<value>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def archive_name(station_id: str, now: float | None = None) -> str:
    """``diagnostics-<station>-<UTC time>.tar.gz``: unique per request, sortable."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", station_id) or "station"
    return f"diagnostics-{safe_id}-{stamp}.tar.gz"


def redact_config(text: str) -> str:
    """The config text with every secret value replaced by ``***`` (and PEM private keys scrubbed)."""
    return redact(_SECRET_LINE.sub(lambda m: f'{m["key"]}"{REDACTED}"', text))


def build_archive(data_dir: Path | str, *, start: float | None, stop: float | None, config_text: str | None,
                  log_file: Path | str | None = None, name: str | None = None) -> Path:
    """Write ``data_dir/diagnostics/<name>`` (.tar.gz) and return its path.

    Members: ``messages.jsonl`` (message log frames between ``start`` and ``stop``,
    oldest first, as redacted when logged), ``agent.log`` when ``log_file`` exists,
    and ``config.toml`` (redacted) when ``config_text`` is given.
    """
    data_dir = Path(data_dir)
    directory = data_dir / "diagnostics"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or archive_name("station"))
    import tarfile  # only when an archive is built

    with tarfile.open(path, "w:gz") as archive:
        _add_bytes(archive, "messages.jsonl", _message_lines(data_dir / MESSAGE_LOG, start, stop))
        if log_file is not None and Path(log_file).is_file():
            archive.add(str(log_file), arcname="agent.log")
        if config_text is not None:
            _add_bytes(archive, "config.toml", redact_config(config_text).encode())
    return path


def _message_lines(db: Path, start: float | None, stop: float | None) -> bytes:
    """The logged frames in [start, stop] as JSON lines, oldest first; empty if there is no log."""
    if not db.exists():
        return b""
    try:
        with MessageLog(db, readonly=True) as messages:
            frames = messages.query(since=start, until=stop, limit=None)
    except StoreError as exc:
        log.warning("diagnostics: message log unreadable: %s", exc)
        return f'{{"error": {json.dumps(str(exc))}}}\n'.encode()
    return "".join(json.dumps(f.to_json_dict()) + "\n" for f in reversed(frames)).encode()


def _add_bytes(archive, name: str, data: bytes) -> None:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o640
    archive.addfile(info, io.BytesIO(data))


def upload(path: Path | str, location: str, *, method: str = "PUT", timeout: float = TRANSFER_TIMEOUT_S) -> None:
    """Send the file at ``path`` to the directory URL ``location`` (blocking). Raises TransferError.

    ftp/ftps: STOR ``<location path>/<file name>``. http(s): ``method`` (PUT or POST) of the raw
    file to ``location``, with the file name appended when ``location`` ends with ``/``.
    """
    path = Path(path)
    url = urlsplit(location)
    try:
        if url.scheme in ("ftp", "ftps") and url.hostname:
            remote = unquote(url.path).rstrip("/") + "/" + path.name
            with ftp_client(url, timeout) as client, open(path, "rb") as data:
                client.storbinary(f"STOR {remote}", data)
        elif url.scheme in ("http", "https") and url.hostname:
            target = location + path.name if location.endswith("/") else location
            import urllib.request  # only when an upload runs

            request = urllib.request.Request(target, data=path.read_bytes(), method=method,
                                             headers={"Content-Type": "application/gzip"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()  # urlopen raises HTTPError for 4xx/5xx
        else:
            raise TransferError(f"unsupported location {location!r}")
    except (OSError, ftplib.Error, ValueError) as exc:
        raise TransferError(f"upload to {safe_url(location)} failed: {exc}") from exc


async def upload_with_retries(path: Path | str, location: str, *, retries: int = 1, retry_interval_s: float = 0,
                              method: str = "PUT") -> bool:
    """Upload in a thread, ``retries`` attempts in all; True once it succeeded."""
    try:
        await with_retries(lambda: asyncio.to_thread(upload, path, location, method=method),
                           attempts=retries, interval_s=retry_interval_s, what="diagnostics upload")
    except TransferError:
        return False
    return True
