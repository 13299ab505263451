"""Security: a CSMS the agent must not trust is refused and the reason reported; secrets never reach
the journal, the message log or a diagnostics archive; the data directory and config are private.

Every case runs the real daemon at log level debug (the most it ever writes) against a real TLS or
Basic-auth CSMS. The smoke run covers each refusal once (the versions alternating) and the secrets
on 1.6; the full-size run covers everything on both versions.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.certs import make_pki, server_ssl_context
from tests.harness import wait_until
from tests.harness.install import INSTALL, STUBBED, run
from tests.reliability.daemon import Daemon, write_config

pytestmark = pytest.mark.usefixtures("no_proxy")  # the daemons it starts talk to loopback servers only

STATION = "CP-SEC"
CONFIG_PASSWORD = "Cfg-Pw-5d1c7e9a42b3"
NEW_KEY = "CsmsSetKey-8e21f0b7c6a4d9"              # set by the CSMS: AuthorizationKey / BasicAuthPassword
REFUSED_KEY = "CsmsRefusedKey-" + "3f9a" * 12        # too long for the setting (16..40), fine for the schema
OVERSIZE_KEY = "CsmsOversizeKey-b7e3" + "q" * 1000   # too long even for the schema (a malformed request)

REFUSALS = {
    # case: (CSMS identity, CA the agent trusts, CSMS wants a client certificate, what the log must say)
    "untrusted_certificate": ("server", "other_ca", False, "is not trusted"),
    "host_name_mismatch": ("wrong_host", "ca", False, "not valid for host name"),
    "expired_certificate": ("expired", "ca", False, "has expired"),
    "missing_client_certificate": ("server", "ca", True, "client certificate"),
    "wrong_password": (None, None, False, "HTTP 401"),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throw-away PKI whose client certificate names this suite's station."""
    return make_pki(tmp_path_factory.mktemp("pki"), station_id=STATION)


def _debug_config(directory, url, version, **csms):
    return write_config(directory, url, version=version, station_id=STATION, csms=csms,
                        logging={"level": "debug"},
                        variables={"OCPPCommCtrlr.RetryBackOffWaitMinimum": 1,
                                   "OCPPCommCtrlr.RetryBackOffRandomRange": 0})


async def refusal(tmp_path, pki, case: str, version: str) -> dict:
    """Run the agent against a CSMS it must refuse; what it reported and whether it stayed up."""
    identity, trusted, wants_client_cert, reason = REFUSALS[case]
    if identity is None:  # Basic auth over ws with the wrong password
        csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(password="the-right-" + CONFIG_PASSWORD))
        await csms.start()
        config = _debug_config(tmp_path, csms.url, version, security_profile=1, password=CONFIG_PASSWORD)
    else:
        context = server_ssl_context(getattr(pki, identity), ca=pki.ca, require_client_cert=wants_client_cert)
        csms = CsmsSimulator(ocpp_version=version, ssl_context=context)
        await csms.start()
        config = _debug_config(tmp_path, csms.url, version, security_profile=2, password=CONFIG_PASSWORD,
                               ca_file=str(getattr(pki, trusted).cert))
    daemon = Daemon(config)
    await daemon.start()
    try:
        await wait_until(lambda: daemon.log_text().count("cannot connect to the CSMS") >= 2, timeout=30)
        alive = daemon.running
    finally:
        code = await daemon.stop()
        await csms.stop()
    log = daemon.log_text()
    return {"case": case, "version": version, "refused": not csms.received, "reason_reported": reason in log,
            "attempts": log.count("cannot connect to the CSMS"), "stayed_up": alive, "clean_exit": code == 0,
            "password_in_journal": CONFIG_PASSWORD in log or _basic_token(CONFIG_PASSWORD) in log}


async def accepted(tmp_path, pki, version: str, profile: int) -> bool:
    """The control: the same set-up with everything right does connect (profile 2 or 3)."""
    context = server_ssl_context(pki.server, ca=pki.ca, require_client_cert=profile == 3)
    csms = CsmsSimulator(ocpp_version=version, ssl_context=context,
                         behaviour=CsmsBehaviour(password=CONFIG_PASSWORD if profile == 2 else None))
    await csms.start()
    extra = ({"password": CONFIG_PASSWORD} if profile == 2 else
             {"client_cert_file": str(pki.client.cert), "client_key_file": str(pki.client.key)})
    daemon = Daemon(_debug_config(tmp_path, csms.url, version, security_profile=profile, ca_file=str(pki.ca.cert),
                                  **extra))
    await daemon.start()
    try:
        await csms.wait_for_call("BootNotification", timeout=15)
        return pki.client.key.read_text() not in daemon.log_text()
    finally:
        await daemon.stop()
        await csms.stop()


def _basic_token(password: str) -> str:
    return base64.b64encode(f"{STATION}:{password}".encode()).decode()


async def check_refusals(tmp_path, pki, figures, run: str, plan) -> None:
    """Each (case, version) of ``plan`` at once, plus the controls; record, then check, every result."""
    # Short directory names: the mock HAL's control socket path must stay within 107 bytes.
    results = await asyncio.gather(*(refusal(tmp_path / f"r{number}", pki, case, version)
                                     for number, (case, version) in enumerate(plan)))
    controls = await asyncio.gather(accepted(tmp_path / "p2", pki, plan[0][1], 2),
                                    accepted(tmp_path / "p3", pki, plan[-1][1], 3))
    for result in results:
        figures.record("security", f"{run} refusal {result['case']} {result['version']}", **result)
    figures.record("security", f"{run} control", profile_2_and_3_connect=all(controls))
    assert all(controls), "the correct TLS set-ups must connect, or the refusals prove nothing"
    for result in results:
        assert result["refused"] and result["reason_reported"] and result["stayed_up"], result
        assert result["clean_exit"] and not result["password_in_journal"], result


def test_security_installed_config_and_data_dir_are_private(tmp_path, figures):
    # The installer (run staged into a DESTDIR, as tests/packaging/test_install.py does) creates both.

    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    for name in STUBBED:  # record nothing, touch nothing: the machine running the tests stays as it is
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    result = run(INSTALL, root, (bin_dir, None))
    assert result.returncode == 0, result.stderr
    modes = {path: stat.S_IMODE((root / path).stat().st_mode)
             for path in ("etc/ocpp-agent", "etc/ocpp-agent/agent.toml", "var/lib/ocpp-agent")}
    figures.record("security", "installed modes", **{path: oct(mode) for path, mode in modes.items()})
    assert all(mode & 0o007 == 0 for mode in modes.values()), modes


async def test_security_smoke_refusals(tmp_path, pki, figures):
    plan = [("untrusted_certificate", "1.6"), ("host_name_mismatch", "2.0.1"), ("expired_certificate", "1.6"),
            ("missing_client_certificate", "2.0.1"), ("wrong_password", "1.6")]
    await check_refusals(tmp_path, pki, figures, "smoke", plan)


@pytest.mark.reliability
async def test_security_full_refusals(tmp_path, pki, figures):
    plan = [(case, version) for version in ("1.6", "2.0.1") for case in REFUSALS]
    await check_refusals(tmp_path, pki, figures, "full", plan)


# ------------------------------------------------------------------ secrets

class SecretsRun:
    """A daemon on profile 1 that is given secrets every way it can be, then grepped everywhere."""

    def __init__(self, tmp_path, version: str, http):
        self.tmp_path, self.version, self.http = tmp_path, version, http
        self.secrets = {"config password": CONFIG_PASSWORD, "Basic auth token": _basic_token(CONFIG_PASSWORD),
                        "key set by the CSMS": NEW_KEY, "key refused by the agent": REFUSED_KEY}

    async def run(self, *, oversize: bool = False, diagnostics: bool = True) -> dict:
        """Give the secrets, fetch diagnostics, stop; where each secret was found."""
        self.csms = CsmsSimulator(ocpp_version=self.version, behaviour=CsmsBehaviour(password=CONFIG_PASSWORD))
        await self.csms.start()
        config = _debug_config(self.tmp_path, self.csms.url, self.version, security_profile=1,
                               password=CONFIG_PASSWORD)
        self.daemon = Daemon(config)
        await self.daemon.start(umask=0o022)  # the usual shell umask: the agent must not rely on systemd's 0027
        try:
            await self.csms.wait_for_call("StatusNotification", timeout=15)
            self.readback = await (self._secrets_16() if self.version == "1.6" else self._secrets_201())
            if oversize:
                self.secrets["oversize key (malformed request)"] = OVERSIZE_KEY[:40]
                await self._oversize()
            self.archive = await self._diagnostics() if diagnostics else {}
        finally:
            await self.daemon.stop()
            await self.csms.stop()
        return self.leaks()

    async def _secrets_16(self):
        for value in (NEW_KEY, REFUSED_KEY):
            await self.csms.call(STATION, call16.ChangeConfiguration(key="AuthorizationKey", value=value))
        result = await self.csms.call(STATION, call16.GetConfiguration(key=["AuthorizationKey"]))
        return json.dumps(result.configuration_key) + json.dumps(result.unknown_key)

    async def _secrets_201(self):
        for value in (NEW_KEY, REFUSED_KEY):
            await self.csms.call(STATION, call201.SetVariables(set_variable_data=[{
                "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
                "attribute_value": value}]))
        result = await self.csms.call(STATION, call201.GetVariables(get_variable_data=[{
            "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}]))
        return json.dumps(result.get_variable_result)

    async def _oversize(self):
        if self.version == "1.6":
            payload = {"key": "AuthorizationKey", "value": OVERSIZE_KEY}
            frame = [2, "oversize", "ChangeConfiguration", payload]
        else:
            frame = [2, "oversize", "SetVariables", {"setVariableData": [{
                "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
                "attributeValue": OVERSIZE_KEY}]}]
        await self.csms.send_raw(STATION, json.dumps(frame))
        await asyncio.sleep(0.5)

    async def _diagnostics(self) -> dict[str, str]:
        location = f"{self.http.url}/upload/"
        if self.version == "1.6":
            name = (await self.csms.call(STATION, call16.GetDiagnostics(location=location))).file_name
        else:
            name = (await self.csms.call(STATION, call201.GetLog(
                log_type="DiagnosticsLog", request_id=1, log={"remote_location": location}))).filename
        await wait_until(lambda: f"/upload/{name}" in self.http.uploads, timeout=15)
        with tarfile.open(fileobj=io.BytesIO(self.http.uploads[f"/upload/{name}"]), mode="r:gz") as archive:
            return {m.name: archive.extractfile(m).read().decode(errors="replace") for m in archive.getmembers()
                    if m.isfile()}

    def places(self) -> dict[str, str]:
        """Every place a secret must not be: the journal, the message log (raw and queried), the archive."""
        data = self.daemon.data_dir
        raw = b"".join(p.read_bytes() for p in data.glob("messages.sqlite*"))
        query = subprocess.run([sys.executable, "-m", "agent", "log", "--config", str(self.daemon.config_path),
                                "--json", "--limit", "100000"], capture_output=True, text=True, timeout=60)
        places = {"journal": self.daemon.log_text(), "message log (file)": raw.decode("latin-1"),
                  "message log (ocpp-agent log)": query.stdout, "read back by the CSMS": self.readback}
        places.update({f"diagnostics {name}": text for name, text in self.archive.items()})
        return places

    def leaks(self) -> dict:
        """Figures: the places grepped, their sizes, and every (secret, place) found."""
        places = self.places()
        found = [f"{secret} in {place}" for secret, value in self.secrets.items()
                 for place, text in places.items() if value in text]
        return {"version": self.version, "places": {p: len(t) for p, t in places.items()},
                "secrets": sorted(self.secrets), "leaks": found, "world_accessible": self.world_accessible()}

    def world_accessible(self) -> list[str]:
        """Paths under the data directory others could read (or, for the directory, enter)."""
        data = self.daemon.data_dir
        found = [str(data)] if stat.S_IMODE(data.stat().st_mode) & 0o007 else []
        for path in data.rglob("*"):
            mode = stat.S_IMODE(path.lstat().st_mode)
            if not path.is_symlink() and mode & (0o005 if path.is_dir() else 0o004):
                found.append(f"{path.relative_to(data)} {oct(mode)}")
        return found


@pytest.mark.parametrize("version", ["1.6", pytest.param("2.0.1", marks=pytest.mark.reliability)])
async def test_security_secrets_stay_out_of_logs_and_archives(tmp_path, figures, http_server, version):
    result = await SecretsRun(tmp_path, version, http_server).run()
    figures.record("security", f"secrets {version}", **result)
    assert result["leaks"] == []
    # The diagnostics directory is the known bug pinned by test_security_diagnostics_archive_is_private.
    assert [path for path in result["world_accessible"] if not path.startswith("diagnostics")] == []


@pytest.mark.parametrize("version", ["2.0.1", pytest.param("1.6", marks=pytest.mark.reliability)])
async def test_security_a_malformed_secret_is_not_quoted_back(tmp_path, version):
    result = await SecretsRun(tmp_path, version, None).run(oversize=True, diagnostics=False)
    assert result["leaks"] == []


def test_security_diagnostics_archive_is_private_under_a_loose_umask(tmp_path):
    from agent.core.management.log_upload import build_archive

    previous = os.umask(0o022)
    try:
        path = build_archive(tmp_path, start=None, stop=None, config_text="[station]\n")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (path, path.parent)}
    assert all(mode & 0o007 == 0 for mode in modes.values()), {name: oct(mode) for name, mode in modes.items()}
