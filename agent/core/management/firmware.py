"""Firmware update job, version-neutral: schedule, download, verify, wait, install, report.

The protocol adapters translate UpdateFirmware (1.6 plain and signed, 2.0.1) into a
:class:`FirmwareRequest` for :meth:`FirmwareJob.schedule` and word the statuses
reported through the attached callback in their own vocabulary. The job speaks
OCPP 2.0.1's (a superset of 1.6's): DownloadScheduled, Downloading, Downloaded,
DownloadFailed, SignatureVerified, InvalidSignature, InstallScheduled, Installing,
InstallRebooting, Installed, InstallationFailed, InstallVerificationFailed, Idle.

The job outlives any one CSMS connection, so it owns its task; the app closes it
at shutdown. Every step is persisted under ``STORE_KEY`` before it starts, so an
agent restart resumes the job, and an install that rebooted the board is reported
Installed by the next start (:meth:`FirmwareJob.resume`).

Signatures are checked by ``agent.core.management.firmware_signature``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable
from urllib.parse import unquote, urlsplit

from agent.core.management.firmware_signature import (
    manufacturer_roots,
    signature_valid,
    signing_certificate_problem,
)
from agent.core.management.security_events import (
    FIRMWARE_UPDATED,
    INVALID_FIRMWARE_SIGNATURE,
    INVALID_FIRMWARE_SIGNING_CERTIFICATE,
    record_security_event,
)

if TYPE_CHECKING:
    import ftplib

log = logging.getLogger(__name__)

DOWNLOAD_SCHEDULED, DOWNLOADING, DOWNLOADED, DOWNLOAD_FAILED = (
    "DownloadScheduled", "Downloading", "Downloaded", "DownloadFailed")
SIGNATURE_VERIFIED, INVALID_SIGNATURE = "SignatureVerified", "InvalidSignature"
INSTALL_SCHEDULED, INSTALLING, INSTALL_REBOOTING = "InstallScheduled", "Installing", "InstallRebooting"
INSTALLED, INSTALLATION_FAILED, INSTALL_VERIFICATION_FAILED = (
    "Installed", "InstallationFailed", "InstallVerificationFailed")
IDLE = "Idle"
#: After these the job is over and the station is Idle again.
FINAL = frozenset({DOWNLOAD_FAILED, INVALID_SIGNATURE, INSTALLED, INSTALLATION_FAILED, INSTALL_VERIFICATION_FAILED})

# Answers to an update request (UpdateFirmwareStatusEnumType in both versions).
ACCEPTED, REJECTED, ACCEPTED_CANCELED, INVALID_CERTIFICATE = (
    "Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate")

#: Exit statuses of the install command besides 0 (installed, active now). Any other is InstallationFailed.
EXIT_VERIFICATION_FAILED = 65  # sysexits EX_DATAERR: the installer's own check refused the image
EXIT_REBOOT = 100  # installed; the board must reboot to run it (the agent asks for the reboot)

#: Outcomes the CSMS also hears about as a security event.
_SECURITY_EVENT_OF = {INSTALLED: FIRMWARE_UPDATED, INVALID_SIGNATURE: INVALID_FIRMWARE_SIGNATURE}

STORE_KEY = "firmware:job"
PENDING, VERIFIED, INSTALLING_PHASE, REBOOTING_PHASE = "pending", "downloaded", "installing", "rebooting"
SCHEMES = ("http", "https", "ftp", "ftps")
DEFAULT_RETRIES = 3  # OCPP leaves the number of attempts to the station when the CSMS gives none
DEFAULT_RETRY_INTERVAL_S = 60
TRANSFER_TIMEOUT_S = 60.0  # per socket operation, not for the whole file
CHUNK = 64 * 1024
#: A retrieve or install time less than this ahead means "now": the clock adopted from the CSMS
#: trails it by a message's latency, and a scheduled status for a few milliseconds only confuses.
SCHEDULE_SLACK_S = 0.5
REPORT_BEFORE_REBOOT_S = 10.0  # how long InstallRebooting may take to reach the CSMS before the reboot


class TransferError(Exception):
    """A download or upload failed (network, server refusal, bad URL, cancelled)."""


# ------------------------------------------------------------------ transfers (blocking; run in a thread)


def ftp_client(url, timeout: float) -> ftplib.FTP:
    """A logged-in FTP (or FTPS with a protected data channel) connection for ``url``."""
    import ftplib  # only when a transfer runs: the idle daemon does not carry it

    if url.scheme == "ftps":
        import ssl

        # ftplib's own default context checks nothing: verify the server like HTTPS does.
        client = ftplib.FTP_TLS(timeout=timeout, context=ssl.create_default_context())
    else:
        client = ftplib.FTP(timeout=timeout)
    client.connect(url.hostname, url.port or 21)
    client.login(unquote(url.username or "anonymous"), unquote(url.password or ""))
    if url.scheme == "ftps":
        client.prot_p()  # explicit TLS: encrypt the file too, not only the login
    return client


def download(location: str, target: Path, *, timeout: float = TRANSFER_TIMEOUT_S,
             cancelled: threading.Event | None = None) -> Path:
    """Fetch ``location`` into ``target`` (blocking). Raises TransferError.

    The file is written under a temporary name and renamed when complete, so a
    half-downloaded image is never mistaken for a good one. Setting ``cancelled``
    stops the transfer at the next chunk (a thread cannot be cancelled otherwise).
    """
    import ftplib  # only when a download runs (its errors are caught below), as urllib.request

    url = urlsplit(location)
    if url.scheme not in SCHEMES or not url.hostname:
        raise TransferError(f"unsupported location {location!r}")
    cancelled = cancelled or threading.Event()
    partial = target.with_name(target.name + ".part")

    def write(out, data: bytes) -> None:
        if cancelled.is_set():
            raise TransferError("cancelled")
        out.write(data)

    try:
        with open(partial, "wb") as out:
            if url.scheme in ("ftp", "ftps"):
                with ftp_client(url, timeout) as client:
                    client.retrbinary(f"RETR {unquote(url.path)}", lambda data: write(out, data), blocksize=CHUNK)
            else:
                import urllib.request  # only when a download runs: it pulls in http.client and email

                with urllib.request.urlopen(location, timeout=timeout) as response:
                    while data := response.read(CHUNK):
                        write(out, data)
        if cancelled.is_set():  # a cancel during the last chunk still counts
            raise TransferError("cancelled")
        partial.replace(target)
    except (OSError, ftplib.Error, ValueError, TransferError) as exc:  # URLError and HTTPError are OSErrors
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


@dataclass(frozen=True)
class FirmwareRequest:
    """An update request in neutral form; times are unix seconds.

    ``request_id`` is None only for a plain OCPP 1.6 UpdateFirmware. A signed
    update carries both ``signing_certificate`` (PEM) and ``signature`` (base64).
    """

    location: str
    retrieve_at: float
    install_at: float | None = None
    retries: int | None = None
    retry_interval_s: int | None = None
    request_id: int | None = None
    signing_certificate: str | None = None
    signature: str | None = None

    @property
    def signed(self) -> bool:
        """True when the image must be verified before it is installed."""
        return self.signature is not None


class FirmwareJob:
    """One firmware update at a time: schedule, download, verify, wait for idle, install.

    ``busy()`` tells whether a transaction runs (installation waits until it is
    False, polled every ``poll_s``). ``install_command`` is an argv list (no
    shell) to which the image path is appended; exit status 0 means Installed,
    ``EXIT_REBOOT`` installed-after-a-reboot (reported InstallRebooting, then
    ``reboot()`` is called), ``EXIT_VERIFICATION_FAILED`` InstallVerificationFailed.
    An installer that reboots the board itself is reported Installed at the next
    start (:meth:`resume`). ``install_command=None`` makes every install fail: a
    station without an installer must not pretend it updated.

    ``certificates`` (the CertificateStore holding the manufacturer roots) and
    ``reboot`` may be set after construction; see :func:`firmware_job`.
    """

    def __init__(self, store, data_dir: Path | str, *, install_command: list[str] | None,
                 busy: Callable[[], bool] = lambda: False, on_status: Callable | None = None,
                 poll_s: float = 1.0, install_timeout_s: float = 900.0, clock: Callable[[], float] = time.time,
                 certificates=None, reboot: Callable[[], None] | None = None):
        self.store = store
        self.directory = Path(data_dir) / "firmware"
        self.install_command = list(install_command) if install_command else None
        self.busy = busy
        #: on_status(status, request_id) -> None or an awaitable that completes when the CSMS has it
        self.on_status = on_status
        self.poll_s = poll_s
        self.install_timeout_s = install_timeout_s
        self.clock = clock
        self.certificates = certificates
        self.reboot = reboot
        self.status = IDLE  # the last status reported; Idle once a job ended (TriggerMessage answers with it)
        self.request_id: int | None = None  # the current job's, while the status is not Idle
        self._task: asyncio.Task | None = None
        self._job: dict | None = None
        self._cancel = threading.Event()

    @property
    def running(self) -> bool:
        """True while a job is scheduled, downloading, waiting or installing."""
        return self._task is not None and not self._task.done()

    def attach(self, on_status: Callable) -> None:
        """Report to ``on_status`` from now on (a new connection takes over the reports)."""
        self.on_status = on_status

    def detach(self, on_status: Callable) -> None:
        """Stop reporting to ``on_status`` if it is still the one attached (its connection ended)."""
        if self.on_status == on_status:
            self.on_status = None

    # -------------------------------------------------------------- commands

    def schedule(self, request: FirmwareRequest) -> str:
        """Start a job for ``request``; the answer to the CSMS.

        Accepted, or AcceptedCanceled when it replaces a job that had not begun
        installing (the CSMS's latest request wins). Rejected for a location we
        cannot fetch, half a signature, or while an installer runs; InvalidCertificate
        (and a security event) when a signing certificate is not from the manufacturer.
        """
        if urlsplit(request.location).scheme not in SCHEMES or (request.signature is None) != (
                request.signing_certificate is None):
            return REJECTED
        if (self.store.get(STORE_KEY) or {}).get("phase") in (INSTALLING_PHASE, REBOOTING_PHASE):
            return REJECTED  # an installer cannot be stopped half-way, nor its reboot taken back
        if request.signed:
            problem = signing_certificate_problem(request.signing_certificate,
                                                  manufacturer_roots(self.certificates), now=self.clock())
            if problem is not None:
                log.warning("firmware signing certificate refused: %s", problem)
                self._security_event(INVALID_FIRMWARE_SIGNING_CERTIFICATE, problem)
                return INVALID_CERTIFICATE
        answer = ACCEPTED_CANCELED if self.running else ACCEPTED
        job = {**dataclasses.asdict(request), "phase": PENDING,
               "retries": DEFAULT_RETRIES if request.retries is None else request.retries,
               "retry_interval_s": DEFAULT_RETRY_INTERVAL_S if request.retry_interval_s is None
               else request.retry_interval_s,
               # unique per job: a cancelled download still finishing in its thread cannot clobber it;
               # shortened, because file names have a limit and locations may be 512 characters long
               "image": f"{secrets.token_hex(4)}-{file_name_for(request.location)[-100:]}"}
        self.store.put(STORE_KEY, job)
        self._start(job)
        return answer

    def resume(self) -> None:
        """At start-up: report an install that rebooted the board, or pick up an unfinished job.

        Safe to call on every (re)connection: a finished install is reported once.
        """
        job = self.store.get(STORE_KEY)
        if job is None or self.running:
            return
        if self.rebooted_while_installing():
            self._job = job
            self._finish(job, INSTALLED)  # the installer rebooted us: that is its way of succeeding
        else:
            self._start(job)

    def rebooted_while_installing(self) -> bool:
        """True when the persisted job was installing when the agent last stopped (not yet reported)."""
        job = self.store.get(STORE_KEY)
        return job is not None and not self.running and job["phase"] in (INSTALLING_PHASE, REBOOTING_PHASE)

    async def close(self) -> None:
        """Stop the job task (shutdown); the persisted job is resumed at the next start."""
        if self._task is not None:
            self._cancel.set()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -------------------------------------------------------------- steps

    def _start(self, job: dict) -> None:
        if self._task is not None:
            self._cancel.set()
            self._task.cancel()
        self._cancel = threading.Event()
        self._job, self.request_id = job, job.get("request_id")
        self._discard_files(keep=self._image(job))
        self._task = asyncio.get_running_loop().create_task(self._run(job), name="firmware-update")

    async def _run(self, job: dict) -> None:
        image = self._image(job)
        if job["phase"] == PENDING or not image.exists():
            if not await self._fetch(job, image):
                return
        else:  # resumed after a restart: the CSMS hears that the job lives on; the image is checked again
            self._report(DOWNLOADED)
            if not await self._checked(job, image):
                return
        if (job.get("install_at") or 0) > self.clock() + SCHEDULE_SLACK_S:
            self._report(INSTALL_SCHEDULED)
            await asyncio.sleep(job["install_at"] - self.clock())
        await self._wait_until_idle()
        await self._install(job, image)

    async def _fetch(self, job: dict, image: Path) -> bool:
        """Download (at the retrieve time) and verify; True when the image may be installed."""
        if job["retrieve_at"] > self.clock() + SCHEDULE_SLACK_S:
            self._report(DOWNLOAD_SCHEDULED)
            await asyncio.sleep(job["retrieve_at"] - self.clock())
        self._report(DOWNLOADING)
        self.directory.mkdir(parents=True, exist_ok=True)
        cancel = self._cancel
        try:
            await with_retries(lambda: asyncio.to_thread(download, job["location"], image, cancelled=cancel),
                               attempts=job["retries"], interval_s=job["retry_interval_s"],
                               what="firmware download")
        except TransferError:
            self._finish(job, DOWNLOAD_FAILED)
            return False
        self._report(DOWNLOADED)
        if not await self._checked(job, image):
            return False
        self._persist(job, VERIFIED)
        return True

    async def _checked(self, job: dict, image: Path) -> bool:
        """Verify a signed image; a bad one ends the job and the image is deleted, never installed."""
        if not job.get("signature"):
            return True  # unsigned (1.6 UpdateFirmware, 2.0.1 without a signature): nothing to check
        if await asyncio.to_thread(signature_valid, image, job["signature"], job["signing_certificate"]):
            self._report(SIGNATURE_VERIFIED)
            return True
        log.error("firmware %s: invalid signature; image deleted", image.name)
        self._finish(job, INVALID_SIGNATURE)
        return False

    async def _wait_until_idle(self) -> None:
        """Never interrupt a charging session for an update: poll until none runs."""
        while self.busy():
            await asyncio.sleep(self.poll_s)

    async def _install(self, job: dict, image: Path) -> None:
        self._persist(job, INSTALLING_PHASE)  # written before: the installer may reboot the board
        self._report(INSTALLING)
        code = await self._run_installer(image)
        if code == EXIT_REBOOT:
            await self._reboot(job)
        elif code == 0:
            self._finish(job, INSTALLED)
        else:
            self._finish(job, INSTALL_VERIFICATION_FAILED if code == EXIT_VERIFICATION_FAILED else INSTALLATION_FAILED)

    async def _reboot(self, job: dict) -> None:
        """The new firmware runs after a reboot: say so, give the report a moment to leave, reboot."""
        self._persist(job, REBOOTING_PHASE)  # the next start reports Installed
        sent = self._report(INSTALL_REBOOTING)
        if sent is not None:
            await asyncio.wait({asyncio.ensure_future(sent)}, timeout=REPORT_BEFORE_REBOOT_S)
        if self.reboot is None:
            log.warning("firmware installed; it runs after the next reboot (nothing here can reboot)")
            return
        self.reboot()

    async def _run_installer(self, image: Path) -> int | None:
        """The installer's exit status; None when it could not run to the end."""
        if self.install_command is None:
            log.error("firmware install: no install command configured")
            return None
        argv = [*self.install_command, str(image)]
        try:
            process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            log.error("firmware install: cannot run %s: %s", argv[0], exc)
            return None
        try:
            code = await asyncio.wait_for(process.wait(), self.install_timeout_s)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            log.error("firmware install: %s timed out after %.0f s", argv[0], self.install_timeout_s)
            return None
        if code not in (0, EXIT_REBOOT):
            log.error("firmware install: %s exited with status %d", argv[0], code)
        return code

    # -------------------------------------------------------------- bookkeeping

    def _finish(self, job: dict, status: str) -> None:
        """End the job: forget it (with its security event, atomically), delete the image, report."""
        with self.store.transaction():
            if status in _SECURITY_EVENT_OF:
                self._security_event(_SECURITY_EVENT_OF[status], f"{status}: {safe_url(job['location'])}")
            self.store.delete(STORE_KEY)
        self._image(job).unlink(missing_ok=True)
        self._report(status)

    def _persist(self, job: dict, phase: str) -> None:
        job["phase"] = phase
        self.store.put(STORE_KEY, job)

    def _image(self, job: dict) -> Path:
        # jobs persisted before images had unique names are named after their location
        return self.directory / job.get("image", file_name_for(job["location"]))

    def _discard_files(self, *, keep: Path) -> None:
        """Remove images of replaced or abandoned jobs: the disk of a Pi is small."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path != keep and path.is_file():
                path.unlink(missing_ok=True)

    def _security_event(self, kind: str, info: str) -> None:
        record_security_event(self.store, kind, timestamp=self.clock(), tech_info=info[:255])

    def _report(self, status: str):
        """Tell the attached connection; returns what its callback returned (awaitable delivery, or None)."""
        request_id = self._job.get("request_id") if self._job else None
        final = status in FINAL
        self.status = IDLE if final else status
        self.request_id = None if final else request_id
        log.info("firmware update: %s", status)
        if self.on_status is None:
            return None
        try:
            return self.on_status(status, request_id)
        except Exception:  # a reporting bug must not abort an update half-way
            log.exception("firmware status callback failed")
            return None


def firmware_job(core, *, clock: Callable[[], float] = time.time) -> FirmwareJob | None:
    """The core's job, wired to its certificate store and board reboot; None without a data directory.

    Built on first use when the app gave a data directory but no job; kept on the
    core, because the job outlives the connection that started it.
    """
    if core is None:
        return None
    job = getattr(core, "firmware", None)
    if job is None and getattr(core, "data_dir", None) is not None:
        job = FirmwareJob(core.store, core.data_dir, install_command=getattr(core, "firmware_install_command", None),
                          busy=core.station.busy, clock=clock)
        core.firmware = job
    if job is not None:
        job.certificates = job.certificates or getattr(core, "certificates", None)
        if job.reboot is None and getattr(core, "request_reset", None) is not None:
            job.reboot = lambda: core.request_reset(True)
    return job
