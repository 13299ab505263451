"""The station's own client certificate (security profile 3): the core's key, signing request, checks,
retry timer and atomic install, the session's choice of client files, then SignCertificate /
CertificateSigned end to end over OCPP 1.6 and 2.0.1 followed by a mutual-TLS connection with it."""

import asyncio
import datetime
import json
import os
import ssl
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

import agent.core.management.station_certificate as station_certificate_module
from agent.core.management.certificates import CertificateStore
from agent.core.management.security_events import SECURITY_EVENT
from agent.core.management.station_certificate import StationCertificate
from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from agent.errors import CallTimeout
from agent.link.supervisor import CsmsSession
from agent.runtime.store import StateStore
from tests.certs import make_pki, server_ssl_context
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.certificates import pem

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
SETTINGS = {"organization_name": "Acme CPO", "cert_signing_wait_minimum_s": 60, "cert_signing_repeat_times": 3,
            "certificate_signed_max_chain_size": 10000}


# ------------------------------------------------------------------ helpers


def make_ca(name, issuer=None):
    """(key, certificate) of a CA: self-signed, or signed by ``issuer`` = (key, certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, signer = issuer or (key, None)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer.subject if signer else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer_key, hashes.SHA256()))
    return key, cert


def issue(csr_pem, ca, *, not_before=None, not_after=None, public_key=None):
    """A client certificate for the CSR's subject and key (or ``public_key``), signed by ``ca``."""
    ca_key, ca_cert = ca
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    return (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
            .public_key(public_key or csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - datetime.timedelta(minutes=1))
            .not_valid_after(not_after or NOW + DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))


def security_events(store):
    """The security events queued in the state store's outbox."""
    return [item.payload for item in store.outbox.pending() if item.action == SECURITY_EVENT]


@pytest.fixture(scope="module")
def ca():
    return make_ca("Test CSMS CA")


@pytest.fixture
def events(tmp_path):
    store = StateStore(tmp_path / "state.sqlite")
    yield store
    store.close()


@pytest.fixture
def station(tmp_path, events):
    return StationCertificate(tmp_path / "station-certificate", station_id="CP1", settings=dict(SETTINGS),
                              store=events)


# ------------------------------------------------------------------ signing request


def test_signing_request_names_station_and_organization_and_is_signed(station):
    csr = x509.load_pem_x509_csr(station.signing_request().encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP1"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme CPO"
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey) and csr.public_key().curve.name == "secp256r1"
    key_file = station.directory / "pending.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(station.directory.stat().st_mode) == 0o700
    assert load_pem_private_key(key_file.read_bytes(), None).public_key() == csr.public_key()
    # Asked again (a repeat, a new trigger): the same key, so a late answer still fits.
    again = x509.load_pem_x509_csr(station.signing_request().encode())
    assert again.public_key() == csr.public_key()
    assert list(station.directory.iterdir()) == [key_file]  # no temporary file left behind


def test_signing_request_without_organization_has_no_o(tmp_path):
    station = StationCertificate(tmp_path, station_id="CP7", settings={**SETTINGS, "organization_name": ""})
    csr = x509.load_pem_x509_csr(station.signing_request().encode())
    assert csr.subject.rfc4514_string() == "CN=CP7"


def test_core_module_does_not_load_cryptography_until_used():
    code = ("import sys, agent.core.management.station_certificate, agent.link.supervisor, agent.protocol.v16.adapter, agent.protocol.v201.adapter\n"
            "print('cryptography' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "False", result.stderr


# ------------------------------------------------------------------ CertificateSigned


def test_accepted_chain_is_installed_with_its_key(station, ca, events, caplog):
    assert station.client_files() is None
    leaf = issue(station.signing_request(), ca)
    assert station.certificate_signed(pem(leaf, ca[1])) == "Accepted"
    cert_file, key_file = station.client_files()
    assert x509.load_pem_x509_certificates(open(cert_file, "rb").read()) == [leaf, ca[1]]
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_file, key_file)  # raises if they do not match
    assert not (station.directory / "pending.key").exists()  # consumed: the next request gets a new key
    assert security_events(events) == []
    key_text = open(key_file).read()
    assert key_text.strip().splitlines()[1] not in caplog.text  # nothing secret logged


def test_chain_through_intermediate_to_installed_csms_root(tmp_path, ca, events):
    roots = CertificateStore(tmp_path / "certs")
    assert roots.install(pem(ca[1]), "CSMSRootCertificate") == "Accepted"
    station = StationCertificate(tmp_path / "sc", station_id="CP1", settings=SETTINGS, store=events,
                                 certificates=roots)
    sub = make_ca("Sub CA", issuer=ca)
    leaf = issue(station.signing_request(), sub)
    assert station.certificate_signed(pem(leaf, sub[1])) == "Accepted"
    assert security_events(events) == []


def _reject_cases(station, ca):
    """Each rejection reason: (case, chain PEM, settings override)."""
    csr = station.signing_request()
    other = make_ca("Other CA")
    sub_of_other = make_ca("Sub of other", issuer=other)
    return {
        "garbage": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        "empty": "",
        "too long": pem(issue(csr, ca)) + "\n" * 10000,
        "other key": pem(issue(csr, ca, public_key=ec.generate_private_key(ec.SECP256R1()).public_key())),
        "expired": pem(issue(csr, ca, not_before=NOW - 3 * DAY, not_after=NOW - DAY)),
        "not yet valid": pem(issue(csr, ca, not_before=NOW + DAY, not_after=NOW + 2 * DAY)),
        # The leaf is the other CA's, but the chain claims an intermediate that did not sign it.
        "broken chain": pem(issue(csr, other), sub_of_other[1]),
        "wrong root": pem(issue(csr, other), other[1]),
    }


@pytest.mark.parametrize("case", ["garbage", "empty", "too long", "other key", "expired", "not yet valid",
                                  "broken chain", "wrong root"])
def test_rejected_chain_records_a_security_event_and_installs_nothing(tmp_path, ca, events, case):
    roots = CertificateStore(tmp_path / "certs")
    roots.install(pem(ca[1]), "CSMSRootCertificate")
    station = StationCertificate(tmp_path / "sc", station_id="CP1", settings=SETTINGS, store=events,
                                 certificates=roots if case == "wrong root" else None)
    chain = _reject_cases(station, ca)[case]
    assert station.certificate_signed(chain) == "Rejected"
    assert station.client_files() is None
    [event] = security_events(events)
    assert event["type"] == "InvalidChargingStationCertificate" and event["tech_info"]
    assert (station.directory / "pending.key").exists()  # the request still stands


def test_reasons_are_told_apart(tmp_path, ca):
    roots = CertificateStore(tmp_path / "certs")
    roots.install(pem(ca[1]), "CSMSRootCertificate")
    station = StationCertificate(tmp_path / "sc", station_id="CP1", settings=SETTINGS, certificates=roots)
    reasons = {case: station.check_chain(chain) for case, chain in _reject_cases(station, ca).items()}
    assert reasons["too long"].startswith("chain of ")
    assert reasons["garbage"] == reasons["empty"] == "not a PEM certificate chain"
    assert "pending signing request" in reasons["other key"]
    assert "expired" in reasons["expired"] and "not valid before" in reasons["not yet valid"]
    assert "is not signed by" in reasons["broken chain"]
    assert "CSMS root" in reasons["wrong root"]


def test_chain_without_a_pending_request_is_rejected(station, ca, events):
    other = StationCertificate(station.directory.parent / "other", station_id="CP1", settings=SETTINGS)
    assert station.certificate_signed(pem(issue(other.signing_request(), ca))) == "Rejected"
    assert len(security_events(events)) == 1


def test_without_a_csms_root_any_consistent_chain_is_accepted(tmp_path, events):
    roots = CertificateStore(tmp_path / "certs")  # empty: nothing to chain to
    station = StationCertificate(tmp_path / "sc", station_id="CP1", settings=SETTINGS, certificates=roots)
    assert station.certificate_signed(pem(issue(station.signing_request(), make_ca("Any CA")))) == "Accepted"


def test_renewal_keeps_the_previous_certificate_until_the_new_one_is_complete(station, ca, monkeypatch):
    first = issue(station.signing_request(), ca)
    assert station.certificate_signed(pem(first)) == "Accepted"
    old_files = station.client_files()
    old_texts = [open(path).read() for path in old_files]

    second = issue(station.signing_request(), ca)  # a new key for the renewal
    real_write = station_certificate_module._write_atomically

    def disk_full_on_chain(path, text, mode):
        if path.suffix == ".crt":
            raise OSError(28, "No space left on device")
        real_write(path, text, mode)

    monkeypatch.setattr(station_certificate_module, "_write_atomically", disk_full_on_chain)
    assert station.certificate_signed(pem(second)) == "Rejected"
    assert station.client_files() == old_files  # the switch never happened
    assert [open(path).read() for path in old_files] == old_texts

    monkeypatch.setattr(station_certificate_module, "_write_atomically", real_write)
    assert station.certificate_signed(pem(second)) == "Accepted"
    new_files = station.client_files()
    assert new_files != old_files and x509.load_pem_x509_certificate(open(new_files[0], "rb").read()) == second
    # The replaced pair and any half-written file are gone; only the pair in use and the pointer remain.
    assert sorted(p.name for p in station.directory.iterdir()) == sorted(
        ["current", new_files[0].rsplit("/", 1)[1], new_files[1].rsplit("/", 1)[1]])


# ------------------------------------------------------------------ the SignCertificate timer


class Csms:
    """Records each SignCertificate; answers with ``status`` (or raises ``error``)."""

    def __init__(self, status="Accepted", error=None):
        self.status, self.error, self.sent = status, error, []

    async def send(self, csr):
        self.sent.append((asyncio.get_running_loop().time(), csr))
        if self.error is not None:
            raise self.error
        return self.status


def fast(tmp_path, **overrides):
    settings = {**SETTINGS, "cert_signing_wait_minimum_s": 0.05, "cert_signing_repeat_times": 2, **overrides}
    return StationCertificate(tmp_path / "sc", station_id="CP1", settings=settings)


async def test_no_answer_repeats_with_doubling_waits_then_gives_up(tmp_path):
    # Waits long enough that a busy machine's scheduling delay (tens of ms) cannot blur the doubling.
    station, csms = fast(tmp_path, cert_signing_wait_minimum_s=0.25), Csms()
    started = asyncio.get_running_loop().time()
    assert await station.request_signature(csms.send) is False
    times = [t for t, _ in csms.sent]
    assert len(times) == 3  # the first request and 2 repeats
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 0.25 <= gaps[0] < 0.5 <= gaps[1]  # the wait, then twice the wait
    assert asyncio.get_running_loop().time() - started >= 0.25 + 0.5 + 1.0  # the last wait too
    keys = [x509.load_pem_x509_csr(csr.encode()).public_key() for _, csr in csms.sent]
    assert keys[0] == keys[1] == keys[2]  # every repeat asks for the same key


async def test_certificate_signed_ends_the_waiting(tmp_path, ca):
    station, csms = fast(tmp_path, cert_signing_wait_minimum_s=5), Csms()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, lambda: station.certificate_signed(pem(issue(csms.sent[-1][1], ca))))
    assert await asyncio.wait_for(station.request_signature(csms.send), 2) is True
    assert len(csms.sent) == 1 and station.client_files() is not None


async def test_rejected_request_is_not_repeated(tmp_path):
    station, csms = fast(tmp_path), Csms(status="Rejected")
    assert await station.request_signature(csms.send) is False
    assert len(csms.sent) == 1


async def test_undelivered_request_counts_as_an_attempt(tmp_path):
    station, csms = fast(tmp_path, cert_signing_repeat_times=1), Csms(error=CallTimeout("no reply"))
    assert await station.request_signature(csms.send) is False
    assert len(csms.sent) == 2


async def test_a_new_round_replaces_the_waiting_one(tmp_path):
    station, csms = fast(tmp_path, cert_signing_wait_minimum_s=5), Csms()
    first = asyncio.ensure_future(station.request_signature(csms.send))
    await wait_until(lambda: csms.sent)
    second = asyncio.ensure_future(station.request_signature(csms.send))
    await wait_until(lambda: len(csms.sent) == 2)
    await asyncio.sleep(0)
    assert first.cancelled() and not second.done()
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)


# ------------------------------------------------------------------ the session's client files


class _Factory:
    subprotocol = "ocpp1.6"


def test_session_uses_the_installed_certificate_else_the_config_files(tmp_path, ca):
    pki = make_pki(tmp_path / "pki")
    config = agent_config(tmp_path, "wss://127.0.0.1:9/ocpp", csms={
        "security_profile": 3, "ca_file": str(pki.ca.cert),
        "client_cert_file": str(pki.client.cert), "client_key_file": str(pki.client.key)})
    station = StationCertificate(tmp_path / "sc", station_id="CP1", settings=SETTINGS)
    settings = {"basic_auth_password": "", "websocket_ping_interval_s": 30}
    session = CsmsSession(config, adapter_factory=_Factory, settings=settings, station_certificate=station)
    before = session.transport_options()
    assert (before.client_cert_file, before.client_key_file) == (str(pki.client.cert), str(pki.client.key))
    station.certificate_signed(pem(issue(station.signing_request(), ca)))
    after = session.transport_options()
    assert (after.client_cert_file, after.client_key_file) == station.client_files()
    no_service = CsmsSession(config, adapter_factory=_Factory, settings=settings).transport_options()
    assert no_service.client_cert_file == str(pki.client.cert)


# ------------------------------------------------------------------ end to end


def answer_sign_certificate(requests):
    """A CSMS frame hook: record SignCertificate payloads and accept them."""
    def hook(station_id, text):
        frame = json.loads(text)
        if frame[0] == 2 and frame[2] == "SignCertificate":
            requests.append(frame[3])
            return json.dumps([3, frame[1], {"status": "Accepted"}])
        return None
    return hook


def pki_ca(pki):
    return (load_pem_private_key(pki.ca.key.read_bytes(), None),
            x509.load_pem_x509_certificate(pki.ca.cert.read_bytes()))


def tls_csms(version, pki):
    """A CSMS that accepts only client certificates issued by the test PKI's CA."""
    context = server_ssl_context(pki.server, ca=pki.ca, require_client_cert=True)
    return CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300), ssl_context=context)


def profile3(pki):
    # The config file's client certificate is one the TLS CSMS refuses: only the installed one can work.
    return {"security_profile": 3, "ca_file": str(pki.ca.cert),
            "client_cert_file": str(pki.foreign_client.cert), "client_key_file": str(pki.foreign_client.key)}


def peer_serial(sim):
    peer = sim.stations["CP1"].websocket.transport.get_extra_info("peercert")
    return int(peer["serialNumber"], 16)


async def test_v16_sign_and_use_the_station_certificate(tmp_path):
    pki = make_pki(tmp_path / "pki")
    requests = []
    plain = CsmsSimulator(ocpp_version="1.6", behaviour=CsmsBehaviour(frame_hook=answer_sign_certificate(requests)))
    secure = tls_csms("1.6", pki)
    await plain.start()
    await secure.start()
    try:
        config = agent_config(tmp_path, plain.url, configuration={"CpoName": "Acme CPO"})
        async with running_agent(config) as running:
            await plain.wait_for_station("CP1")
            trigger = call16.ExtendedTriggerMessage(requested_message="SignChargePointCertificate")
            assert (await plain.call("CP1", trigger)).status == "Accepted"
            await wait_until(lambda: requests)
            csr = x509.load_pem_x509_csr(requests[0]["csr"].encode())
            assert csr.subject.rfc4514_string() == "CN=CP1,O=Acme CPO"

            wrong = issue(requests[0]["csr"], pki_ca(pki), not_before=NOW - 3 * DAY, not_after=NOW - DAY)
            assert (await plain.call("CP1", call16.CertificateSigned(certificate_chain=pem(wrong)))).status == \
                "Rejected"
            leaf = issue(requests[0]["csr"], pki_ca(pki))
            assert (await plain.call("CP1", call16.CertificateSigned(certificate_chain=pem(leaf)))).status == \
                "Accepted"
            assert plain.connections == 1  # the current connection is not interrupted

            # The next connection: profile 3 to a CSMS that requires a client certificate from that CA.
            running.session.reconfigure(agent_config(tmp_path, secure.url, csms=profile3(pki)))
            await secure.wait_for_station("CP1", timeout=5)
            await secure.wait_for_call("BootNotification")
            assert peer_serial(secure) == leaf.serial_number
    finally:
        await plain.stop()
        await secure.stop()


async def test_v201_sign_and_use_the_station_certificate(tmp_path):
    pki = make_pki(tmp_path / "pki")
    requests = []
    plain = CsmsSimulator(ocpp_version="2.0.1", behaviour=CsmsBehaviour(frame_hook=answer_sign_certificate(requests)))
    await plain.start()
    try:
        config = agent_config(tmp_path, plain.url, ocpp_version="2.0.1",
                              variables={"SecurityCtrlr.OrganizationName": "Acme CPO"})
        async with running_agent(config) as running:
            await plain.wait_for_station("CP1")
            root = call201.InstallCertificate(certificate_type="CSMSRootCertificate",
                                              certificate=pki.ca.cert.read_text())
            assert (await plain.call("CP1", root)).status == "Accepted"
            v2g = call201.TriggerMessage(requested_message="SignV2GCertificate")
            assert (await plain.call("CP1", v2g)).status == "NotImplemented"
            trigger = call201.TriggerMessage(requested_message="SignChargingStationCertificate")
            assert (await plain.call("CP1", trigger)).status == "Accepted"
            await wait_until(lambda: requests)
            assert requests[0]["certificateType"] == "ChargingStationCertificate"
            csr = x509.load_pem_x509_csr(requests[0]["csr"].encode())
            assert csr.subject.rfc4514_string() == "CN=CP1,O=Acme CPO"

            # Signed by a CA that does not lead to the installed CSMS root: refused, and reported.
            foreign = issue(requests[0]["csr"], make_ca("Foreign CA"))
            refused = call201.CertificateSigned(certificate_chain=pem(foreign),
                                                certificate_type="ChargingStationCertificate")
            assert (await plain.call("CP1", refused)).status == "Rejected"
            report = await plain.wait_for_call("SecurityEventNotification", count=2)  # after StartupOfTheDevice
            assert report[-1].payload["type"] == "InvalidChargingStationCertificate"

            leaf = issue(requests[0]["csr"], pki_ca(pki))
            as_v2g = call201.CertificateSigned(certificate_chain=pem(leaf), certificate_type="V2GCertificate")
            assert (await plain.call("CP1", as_v2g)).status == "Rejected"  # no ISO 15118 here
            signed = call201.CertificateSigned(certificate_chain=pem(leaf, pki_ca(pki)[1]),
                                               certificate_type="ChargingStationCertificate")
            assert (await plain.call("CP1", signed)).status == "Accepted"
            assert running.core.station_certificate.client_files() is not None
    finally:
        await plain.stop()

    # After a restart, the station connects with profile 3 using the certificate it was given.
    secure = tls_csms("2.0.1", pki)
    await secure.start()
    try:
        async with running_agent(agent_config(tmp_path, secure.url, ocpp_version="2.0.1", csms=profile3(pki))):
            await secure.wait_for_call("BootNotification")
            assert peer_serial(secure) == leaf.serial_number
    finally:
        await secure.stop()
