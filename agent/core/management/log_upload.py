"""Log upload, version-neutral: pack a log into a tar.gz and upload it, one request at a time.

Two kinds of log, named as both OCPP versions name them:

- ``DiagnosticsLog``: the message log frames in the requested window, the agent
  log file when there is one, and the station's config file (redacted);
- ``SecurityLog``: the durable security log (``agent.core.management.security_events``) in
  the requested window: timestamp, type and techInfo of each event.

:class:`LogUploadJob` runs the requests of 1.6 GetDiagnostics, 1.6 GetLog
(security extension) and 2.0.1 GetLog. It reports statuses in 2.0.1's words
(Uploading, Uploaded, UploadFailure, BadMessage, AcceptedCanceled); each adapter
maps them onto its own messages. The job outlives any one CSMS connection, so it
owns its task; whoever built it closes it at shutdown.

The blocking work (SQLite, files, sockets) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, NamedTuple
from urllib.parse import unquote, urlsplit

from agent.runtime.clock import format_iso
from agent.core.management.firmware import (
    SCHEMES,
    TRANSFER_TIMEOUT_S,
    TransferError,
    ftp_client,
    safe_url,
    with_retries,
)
from agent.core.management.security_events import SecurityLogEntry, read_security_log
from agent.errors import StoreError
from agent.runtime.message_log import REDACTED, MessageLog, redact

log = logging.getLogger(__name__)

DIAGNOSTICS_LOG, SECURITY_LOG = "DiagnosticsLog", "SecurityLog"

# Statuses reported through LogUploadJob.on_status (2.0.1's UploadLogStatusEnumType words).
IDLE, UPLOADING, UPLOADED = "Idle", "Uploading", "Uploaded"
UPLOAD_FAILURE, BAD_MESSAGE, CANCELED = "UploadFailure", "BadMessage", "AcceptedCanceled"
UPLOAD_FAILED = "UploadFailed"  # 1.6 DiagnosticsStatus's word for UPLOAD_FAILURE

MESSAGE_LOG = "messages.sqlite"
DEFAULT_ATTEMPTS = 1  # OCPP leaves it to the station when the CSMS gives no retries
ABORT_GRACE_S = 5.0  # how long a cancelled transfer may take to notice before the next one starts

# `basic_auth_password = "x"` or `password: x`: the same secret words the message log redacts.
_SECRET_WORDS = r"[\w.-]*(?:password|passwd|secret|private_?key|authorization_?key)[\w.-]*"
_SECRET_LINE = re.compile(
    rf"^(?P<key>\s*[\"']?{_SECRET_WORDS}[\"']?\s*[=:]\s*)(?P<value>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
# The same inside free text ("AuthorizationKey=abc changed"): up to the next blank or quote.
_SECRET_PAIR = re.compile(rf"(?P<key>{_SECRET_WORDS}[\"']?\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;]+)",
                          re.IGNORECASE)


# ------------------------------------------------------------------ redaction


def redact_config(text: str) -> str:
    """The config text with every secret value replaced by ``***`` (and PEM private keys scrubbed)."""
    return redact(_SECRET_LINE.sub(lambda m: f'{m["key"]}"{REDACTED}"', text))


def redact_text(text: str | None) -> str | None:
    """Free text (a security event's techInfo) with ``secret=value`` pairs and PEM private keys hidden."""
    if text is None:
        return None
    return redact(_SECRET_PAIR.sub(lambda m: f"{m['key']}{REDACTED}", text))


# ------------------------------------------------------------------ archives (blocking)


def archive_name(station_id: str, now: float | None = None, *, log_type: str = DIAGNOSTICS_LOG,
                 request_id: int | None = None) -> str:
    """``diagnostics-<station>-<UTC time>[-<request id>].tar.gz`` (``security-…`` for the security log).

    Sortable, and unique per request: two requests in one second differ by their id.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", station_id) or "station"
    kind = "security" if log_type == SECURITY_LOG else "diagnostics"
    suffix = "" if request_id is None else f"-{request_id}"
    return f"{kind}-{safe_id}-{stamp}{suffix}.tar.gz"


def build_archive(data_dir: Path | str, *, start: float | None, stop: float | None, config_text: str | None,
                  log_file: Path | str | None = None, name: str | None = None) -> Path:
    """Write the DiagnosticsLog archive ``data_dir/diagnostics/<name>`` and return its path.

    Members: ``messages.jsonl`` (message log frames between ``start`` and ``stop``,
    oldest first, as redacted when logged), ``agent.log`` when ``log_file`` exists,
    and ``config.toml`` (redacted) when ``config_text`` is given.
    """
    data_dir = Path(data_dir)
    members: list[tuple[str, bytes | Path]] = [("messages.jsonl", _message_lines(data_dir / MESSAGE_LOG, start, stop))]
    if log_file is not None and Path(log_file).is_file():
        members.append(("agent.log", Path(log_file)))
    if config_text is not None:
        members.append(("config.toml", redact_config(config_text).encode()))
    return _write_archive(data_dir, name or archive_name("station"), members)


def build_security_archive(data_dir: Path | str, entries: Iterable[SecurityLogEntry], *, name: str) -> Path:
    """Write the SecurityLog archive: ``security.jsonl``, one event per line, oldest first.

    Each line holds exactly ``timestamp`` (ISO 8601 UTC), ``type`` and ``techInfo``
    (redacted: an event's free text must not leak a secret).
    """
    lines = "".join(json.dumps({"timestamp": format_iso(e.timestamp), "type": e.type,
                                "techInfo": redact_text(e.tech_info)}) + "\n" for e in entries)
    return _write_archive(Path(data_dir), name, [("security.jsonl", lines.encode())])


def _write_archive(data_dir: Path, name: str, members: list[tuple[str, bytes | Path]]) -> Path:
    directory = data_dir / "diagnostics"
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.chmod(directory, 0o750)  # mkdir's mode is filtered by the umask
    path = directory / name
    # The archive holds idTokens and transactions: created private, whatever the umask.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "wb") as raw:
        os.fchmod(raw.fileno(), 0o640)
        _write_members(raw, members)
    return path


def _write_members(raw, members: list[tuple[str, bytes | Path]]) -> None:
    import tarfile  # only when an archive is written: the idle daemon does not carry it

    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for arcname, content in members:
            if isinstance(content, Path):
                archive.add(str(content), arcname=arcname)
            else:
                info = tarfile.TarInfo(arcname)
                info.size, info.mtime, info.mode = len(content), int(time.time()), 0o640
                archive.addfile(info, io.BytesIO(content))


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


# ------------------------------------------------------------------ upload (blocking)


class UploadCanceled(TransferError):
    """The upload was cancelled while it ran (a newer request, or shutdown)."""


class _AbortableFile(io.RawIOBase):
    """A file read in blocks that stops the transfer once ``abort`` is set."""

    def __init__(self, path: Path, abort: threading.Event | None):
        self._file, self._abort = open(path, "rb"), abort

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._abort is not None and self._abort.is_set():
            raise UploadCanceled("upload canceled")
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()
        super().close()


def usable_location(location: str) -> bool:
    """True for an http(s) or ftp(s) URL with a host: the only places an archive can go."""
    try:
        url = urlsplit(location)
        return url.scheme in SCHEMES and bool(url.hostname)
    except ValueError:  # e.g. an invalid port
        return False


def upload(path: Path | str, location: str, *, method: str = "PUT", timeout: float = TRANSFER_TIMEOUT_S,
           abort: threading.Event | None = None) -> None:
    """Send the file at ``path`` to the directory URL ``location`` (blocking). Raises TransferError.

    ftp/ftps: STOR ``<location path>/<file name>``. http(s): ``method`` (PUT or POST) of the raw
    file to ``location``, with the file name appended when ``location`` ends with ``/``.
    Setting ``abort`` stops the transfer at the next block (UploadCanceled).
    """
    import ftplib  # only when an upload runs (its errors are caught below), as urllib.request

    path = Path(path)
    if not usable_location(location):
        raise TransferError(f"unsupported location {location!r}")
    url = urlsplit(location)
    try:
        with _AbortableFile(path, abort) as data:
            if url.scheme in ("ftp", "ftps"):
                remote = unquote(url.path).rstrip("/") + "/" + path.name
                with ftp_client(url, timeout) as client:
                    client.storbinary(f"STOR {remote}", data)
            else:
                _http_upload(data, path, location, method, timeout)
    except (OSError, ftplib.Error, ValueError) as exc:
        raise TransferError(f"upload to {safe_url(location)} failed: {exc}") from exc


def _http_upload(data, path: Path, location: str, method: str, timeout: float) -> None:
    import urllib.request  # only when an upload runs: it pulls in http.client and email

    target = location + path.name if location.endswith("/") else location
    # An explicit length: without it urllib would fall back to chunked encoding for a file.
    headers = {"Content-Type": "application/gzip", "Content-Length": str(path.stat().st_size)}
    request = urllib.request.Request(target, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()  # urlopen raises HTTPError for 4xx/5xx


# ------------------------------------------------------------------ the job


@dataclass(frozen=True)
class LogRequest:
    """One upload request, in the core's terms.

    ``request_id`` is the CSMS's GetLog requestId, None for a request that has none
    (1.6 GetDiagnostics). ``oldest``/``latest`` bound the window (unix times, inclusive;
    None = open). ``retries`` is the number of attempts in all (None: the station's default).
    """

    location: str
    log_type: str = DIAGNOSTICS_LOG
    request_id: int | None = None
    oldest: float | None = None
    latest: float | None = None
    retries: int | None = None
    retry_interval_s: float | None = None


class Started(NamedTuple):
    """What :meth:`LogUploadJob.start` tells the adapter for its reply."""

    file_name: str
    canceled: bool  # an upload in progress was cancelled for this one (GetLog: AcceptedCanceled)


class LogUploadJob:
    """One log upload at a time: build the archive, upload it with retries, report each step.

    ``on_status(request, status)`` hears every status of the request being served
    (set by the adapter of the current connection; None drops them). A newer
    request cancels the running one, which is then reported as CANCELED once and
    silent afterwards.
    """

    def __init__(self, store, data_dir: Path | str, *, station_id: str = "station", config_path: str | None = None,
                 log_file: Path | str | None = None, clock: Callable[[], float] = time.time,
                 on_status: Callable[[LogRequest, str], None] | None = None):
        self.store = store
        self.data_dir = Path(data_dir)
        self.station_id = station_id
        self.config_path = config_path
        self.log_file = log_file
        self.clock = clock
        self.on_status = on_status
        self.current: LogRequest | None = None  # the request being served, None when idle
        self._task: asyncio.Task | None = None
        self._abort = threading.Event()  # the running request's; a new one per request

    @property
    def status(self) -> str:
        """Uploading while a request is served, else Idle (what a triggered status notification says)."""
        return UPLOADING if self.current is not None else IDLE

    def start(self, request: LogRequest) -> Started:
        """Serve ``request``, cancelling the one in progress (the CSMS's latest request wins)."""
        previous, canceled = self._task, self.current
        if canceled is not None:
            self._report(canceled, CANCELED)
        self._abort.set()  # stops the previous transfer thread at its next block
        self._abort = threading.Event()
        if previous is not None:
            previous.cancel()
        self.current = request
        name = archive_name(self.station_id, self.clock(), log_type=request.log_type, request_id=request.request_id)
        self._task = asyncio.get_running_loop().create_task(
            self._run(request, name, previous, self._abort), name="log-upload")
        return Started(name, canceled is not None)

    async def close(self) -> None:
        """Cancel the running upload (shutdown), without reporting it."""
        self.current = None
        self._abort.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -------------------------------------------------------------- steps

    def _report(self, request: LogRequest, status: str) -> None:
        # A request that a newer one replaced stays silent: its end was reported as CANCELED.
        if self.current is request and self.on_status is not None:
            self.on_status(request, status)

    async def _run(self, request: LogRequest, name: str, previous: asyncio.Task | None,
                   abort: threading.Event) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])  # its file and its transfer are gone before ours start
            if not usable_location(request.location):
                log.warning("log upload %s: unusable location %s", name, safe_url(request.location))
                self._report(request, BAD_MESSAGE)
                return
            self._report(request, UPLOADING)
            ok = await self._build_and_upload(request, name, abort)
            self._report(request, UPLOADED if ok else UPLOAD_FAILURE)
        except Exception:  # our bug: the CSMS still hears how the request ended
            log.exception("log upload %s failed", name)
            self._report(request, UPLOAD_FAILURE)
        finally:
            if self.current is request:
                self.current = None

    async def _build_and_upload(self, request: LogRequest, name: str, abort: threading.Event) -> bool:
        try:
            path = await self._build(request, name, abort)
            if path is None:
                return False
            attempts = DEFAULT_ATTEMPTS if request.retries is None else max(1, request.retries)
            await with_retries(lambda: _in_thread(abort, upload, path, request.location, abort=abort),
                               attempts=attempts, interval_s=request.retry_interval_s or 0, what="log upload")
        except TransferError:
            return False
        finally:
            # Also when cancelled mid-build. The CSMS has the file, or will ask again: don't fill the disk.
            (self.data_dir / "diagnostics" / name).unlink(missing_ok=True)
        return True

    async def _build(self, request: LogRequest, name: str, abort: threading.Event) -> Path | None:
        """The archive of the requested log, or None when it could not be written."""
        import tarfile  # its error is caught below; see _write_members

        try:
            if request.log_type == SECURITY_LOG:
                # Read here, in the loop's thread: the state store's connection belongs to it.
                entries = read_security_log(self.store, since=request.oldest, until=request.latest)
                return await _in_thread(abort, build_security_archive, self.data_dir, entries, name=name)
            return await _in_thread(abort, self._build_diagnostics, request, name)
        except (OSError, StoreError, tarfile.TarError) as exc:
            log.error("log archive %s failed: %s", name, exc)
            return None

    def _build_diagnostics(self, request: LogRequest, name: str) -> Path:
        """Blocking: read the config file and write the DiagnosticsLog archive."""
        config_text = Path(self.config_path).read_text(errors="replace") if self.config_path else None
        return build_archive(self.data_dir, start=request.oldest, stop=request.latest, config_text=config_text,
                             log_file=self.log_file, name=name)


async def _in_thread(abort: threading.Event, function, /, *args, **kwargs):
    """Run blocking ``function`` in a worker thread; when cancelled, stop it and wait for it a little.

    A thread cannot be killed: ``abort`` asks the transfer to stop, and waiting
    (at most ABORT_GRACE_S) keeps two transfers from overlapping.
    """
    future = asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # a late failure is not "never retrieved"
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        abort.set()
        await asyncio.wait([future], timeout=ABORT_GRACE_S)
        raise


def log_job(core, *, clock: Callable[[], float] = time.time) -> LogUploadJob | None:
    """The core's upload job (``core.logs``), built on first use; None without a data directory.

    Kept on the core because the job outlives the connection that started it.
    """
    if core is None:
        return None
    job = getattr(core, "logs", None)
    if job is None and getattr(core, "data_dir", None) is not None:
        job = LogUploadJob(core.store, core.data_dir, station_id=getattr(core, "station_id", "") or "station",
                           config_path=getattr(core, "config_path", None), clock=clock)
        core.logs = job
    return job
