"""Firmware update job, version-neutral: download, wait for idle, install, report.

The protocol adapters translate UpdateFirmware into :meth:`FirmwareJob.schedule` and
map the statuses reported through ``on_status`` onto their own vocabulary (the job
speaks OCPP 1.6's: Downloading, Downloaded, DownloadFailed, Installing, Installed,
InstallationFailed).

The job outlives any one CSMS connection, so it owns its task; the app closes it
at shutdown. Its state is persisted so that an install that reboots the board is
reported as Installed by the next agent start (:meth:`FirmwareJob.resume`).
"""

from __future__ import annotations

import asyncio
import ftplib
import logging
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

DOWNLOADING, DOWNLOADED, DOWNLOAD_FAILED = "Downloading", "Downloaded", "DownloadFailed"
INSTALLING, INSTALLED, INSTALLATION_FAILED = "Installing", "Installed", "InstallationFailed"
IDLE = "Idle"

STORE_KEY = "firmware:job"
SCHEMES = ("http", "https", "ftp", "ftps")
DEFAULT_RETRIES = 3  # OCPP leaves the number of attempts to the station when the CSMS gives none
DEFAULT_RETRY_INTERVAL_S = 60
TRANSFER_TIMEOUT_S = 60.0  # per socket operation, not for the whole file
CHUNK = 64 * 1024


class TransferError(Exception):
    """A download or upload failed (network, server refusal, bad URL)."""


# ------------------------------------------------------------------ transfers (blocking; run in a thread)


def ftp_client(url, timeout: float) -> ftplib.FTP:
    """A logged-in FTP (or FTPS with a protected data channel) connection for ``url``."""
    client = ftplib.FTP_TLS(timeout=timeout) if url.scheme == "ftps" else ftplib.FTP(timeout=timeout)
    client.connect(url.hostname, url.port or 21)
    client.login(unquote(url.username or "anonymous"), unquote(url.password or ""))
    if url.scheme == "ftps":
        client.prot_p()  # explicit TLS: encrypt the file too, not only the login
    return client


def download(location: str, target: Path, *, timeout: float = TRANSFER_TIMEOUT_S) -> Path:
    """Fetch ``location`` into ``target`` (blocking). Raises TransferError.

    The file is written under a temporary name and renamed when complete, so a
    half-downloaded image is never mistaken for a good one.
    """
    url = urlsplit(location)
    if url.scheme not in SCHEMES or not url.hostname:
        raise TransferError(f"unsupported location {location!r}")
    partial = target.with_name(target.name + ".part")
    try:
        with open(partial, "wb") as out:
            if url.scheme in ("ftp", "ftps"):
                with ftp_client(url, timeout) as client:
                    client.retrbinary(f"RETR {unquote(url.path)}", out.write, blocksize=CHUNK)
            else:
                import urllib.request  # only when a download runs: it pulls in http.client and email

                with urllib.request.urlopen(location, timeout=timeout) as response:
                    shutil.copyfileobj(response, out, CHUNK)
        partial.replace(target)
    except (OSError, ftplib.Error, ValueError) as exc:  # URLError and HTTPError are OSErrors
        partial.unlink(missing_ok=True)
        raise TransferError(f"download of {safe_url(location)} failed: {exc}") from exc
    return target


def safe_url(location: str) -> str:
    """``location`` without its password, for logs."""
    url = urlsplit(location)
    if url.password is None:
        return location
    return url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@")).geturl()


def file_name_for(location: str) -> str:
    """A local file name for the image at ``location`` (its last path segment)."""
    name = PurePosixPath(unquote(urlsplit(location).path)).name
    return name if name not in ("", ".", "..") else "firmware.bin"


async def with_retries(attempt, *, attempts: int, interval_s: float, what: str):
    """Await ``attempt()`` up to ``attempts`` times, ``interval_s`` apart; re-raise the last TransferError."""
    for number in range(1, max(1, attempts) + 1):
        try:
            return await attempt()
        except TransferError as exc:
            log.warning("%s, attempt %d of %d: %s", what, number, max(1, attempts), exc)
            if number >= attempts:
                raise
            await asyncio.sleep(interval_s)


# ------------------------------------------------------------------ the job


class FirmwareJob:
    """One firmware update at a time: schedule, download, wait for idle, install.

    ``busy()`` tells whether a transaction runs (installation waits until it is
    False, polled every ``poll_s``). ``install_command`` is an argv list (no
    shell) to which the image path is appended; exit status 0 means Installed.
    When it reboots the board instead of exiting, :meth:`resume` reports
    Installed at the next start. ``install_command=None`` makes every install
    fail: a station without an installer must not pretend it updated.
    """

    def __init__(self, store, data_dir: Path | str, *, install_command: list[str] | None,
                 busy: Callable[[], bool] = lambda: False, on_status: Callable[[str], None] | None = None,
                 poll_s: float = 1.0, install_timeout_s: float = 900.0, clock: Callable[[], float] = time.time):
        self.store = store
        self.directory = Path(data_dir) / "firmware"
        self.install_command = list(install_command) if install_command else None
        self.busy = busy
        self.on_status = on_status
        self.poll_s = poll_s
        self.install_timeout_s = install_timeout_s
        self.clock = clock
        self.status = IDLE  # the last status reported (TriggerMessage answers with it)
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        """True while a job is scheduled, downloading, waiting or installing."""
        return self._task is not None and not self._task.done()

    def schedule(self, location: str, retrieve_at: float, retries: int | None = None,
                 retry_interval_s: int | None = None) -> None:
        """Start a job (replacing any running one: the CSMS's latest request wins)."""
        job = {"location": location, "retrieve_at": retrieve_at,
               "retries": DEFAULT_RETRIES if retries is None else retries,
               "retry_interval_s": DEFAULT_RETRY_INTERVAL_S if retry_interval_s is None else retry_interval_s,
               "phase": "pending"}
        self.store.put(STORE_KEY, job)
        self._start(job)

    def resume(self) -> None:
        """At start-up: report an install that rebooted the board, or pick up a pending job.

        Safe to call on every (re)connection: a finished install is reported once.
        """
        job = self.store.get(STORE_KEY)
        if job is None or self.running:
            return
        if job["phase"] == "installing":
            self.store.delete(STORE_KEY)
            self._report(INSTALLED)  # the installer rebooted us: that is its way of succeeding
        else:
            self._start(job)

    async def close(self) -> None:
        """Stop the job task (shutdown); the persisted job is resumed at the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -------------------------------------------------------------- steps

    def _start(self, job: dict) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(self._run(job), name="firmware-update")

    async def _run(self, job: dict) -> None:
        await asyncio.sleep(max(0.0, job["retrieve_at"] - self.clock()))
        image = await self._download(job)
        if image is None:
            return
        await self._wait_until_idle()
        await self._install(job, image)

    async def _download(self, job: dict) -> Path | None:
        self._report(DOWNLOADING)
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / file_name_for(job["location"])
        try:
            await with_retries(lambda: asyncio.to_thread(download, job["location"], target),
                               attempts=job["retries"], interval_s=job["retry_interval_s"],
                               what="firmware download")
        except TransferError:
            self.store.delete(STORE_KEY)
            self._report(DOWNLOAD_FAILED)
            return None
        self._report(DOWNLOADED)
        return target

    async def _wait_until_idle(self) -> None:
        """Never interrupt a charging session for an update: poll until none runs."""
        while self.busy():
            await asyncio.sleep(self.poll_s)

    async def _install(self, job: dict, image: Path) -> None:
        self.store.put(STORE_KEY, {**job, "phase": "installing"})  # written before: the installer may reboot
        self._report(INSTALLING)
        ok = await self._run_installer(image)
        self.store.delete(STORE_KEY)
        self._report(INSTALLED if ok else INSTALLATION_FAILED)

    async def _run_installer(self, image: Path) -> bool:
        if self.install_command is None:
            log.error("firmware install: no install command configured")
            return False
        argv = [*self.install_command, str(image)]
        try:
            process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            log.error("firmware install: cannot run %s: %s", argv[0], exc)
            return False
        try:
            code = await asyncio.wait_for(process.wait(), self.install_timeout_s)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            log.error("firmware install: %s timed out after %.0f s", argv[0], self.install_timeout_s)
            return False
        if code != 0:
            log.error("firmware install: %s exited with status %d", argv[0], code)
        return code == 0

    def _report(self, status: str) -> None:
        self.status = IDLE if status in (INSTALLED, INSTALLATION_FAILED, DOWNLOAD_FAILED) else status
        log.info("firmware update: %s", status)
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:  # a reporting bug must not abort an update half-way
                log.exception("firmware status callback failed")


def transaction_running(station) -> Callable[[], bool]:
    """A ``busy`` predicate over the core's ChargingStation: any EVSE with a transaction."""
    return lambda: any(machine.transaction is not None for machine in station.evses.values())
