"""Certificate management: the core store, then InstallCertificate / GetInstalledCertificateIds /
DeleteCertificate end to end over OCPP 1.6 (security extension) and 2.0.1."""

import hashlib
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.core.management.certificates import CertificateStore
from tests.harness import agent_config, running_agent
from tests.harness.certificates import make_cert, pem


def expected_hash(cert, issuer_public_key):
    """OCPP CertificateHashData recomputed here, independently of the store."""
    if isinstance(issuer_public_key, rsa.RSAPublicKey):
        key_bits = issuer_public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    else:
        key_bits = issuer_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {"hash_algorithm": "SHA256",
            "issuer_name_hash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
            "issuer_key_hash": hashlib.sha256(key_bits).hexdigest(),
            "serial_number": f"{cert.serial_number:x}"}


@pytest.fixture(scope="module")
def root():
    return make_cert("Test Root CA", serial=0x00ABCDEF)


@pytest.fixture
def store(tmp_path):
    return CertificateStore(tmp_path / "certs")


# ------------------------------------------------------------------ core


def test_install_lists_hash_data_as_ocpp_specifies(store, root):
    key, cert = root
    assert store.install(pem(cert), "CSMSRootCertificate") == "Accepted"
    assert store.list() == [{**expected_hash(cert, key.public_key()), "use": "CSMSRootCertificate"}]
    assert store.list(["CSMSRootCertificate"])[0]["serial_number"] == "abcdef"
    assert store.list(["MORootCertificate"]) == []
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o750


def test_rsa_root_hashes_the_pkcs1_key(store):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _, cert = make_cert("RSA Root", key=key)
    assert store.install(pem(cert), "V2GRootCertificate") == "Accepted"
    assert store.list()[0]["issuer_key_hash"] == expected_hash(cert, key.public_key())["issuer_key_hash"]


def test_intermediate_hashes_its_installed_issuers_key(store, root):
    _, sub = make_cert("Sub CA", issuer=root)
    assert store.install(pem(root[1]), "V2GRootCertificate") == "Accepted"
    assert store.install(pem(sub), "V2GCertificateChain") == "Accepted"
    assert store.list(["V2GCertificateChain"])[0]["issuer_key_hash"] == \
        expected_hash(sub, root[0].public_key())["issuer_key_hash"]


def test_reinstall_is_accepted_once(store, root):
    for _ in range(2):
        assert store.install(pem(root[1]), "CSMSRootCertificate") == "Accepted"
    assert len(store.list()) == 1
    assert store.install(pem(root[1]), "ManufacturerRootCertificate") == "Accepted"  # another use: its own entry
    assert [c["use"] for c in store.list()] == ["CSMSRootCertificate", "ManufacturerRootCertificate"]


@pytest.mark.parametrize("case", ["garbage", "leaf", "expired", "two", "use"])
def test_rejects(store, root, case):
    text = {"garbage": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
            "leaf": pem(make_cert("leaf", ca=False)[1]),
            "expired": pem(make_cert("old CA", expired=True)[1]),
            "two": pem(root[1]) * 2}.get(case, pem(root[1]))
    assert store.install(text, "NoSuchUse" if case == "use" else "CSMSRootCertificate") == "Rejected"
    assert store.list() == []


def test_full_store_rejects(tmp_path):
    store = CertificateStore(tmp_path / "certs", max_count=2)
    results = [store.install(pem(make_cert(f"CA {i}")[1]), "MORootCertificate") for i in range(3)]
    assert results == ["Accepted", "Accepted", "Rejected"]


def test_storage_error_fails(tmp_path, root):
    (tmp_path / "file").write_text("")
    assert CertificateStore(tmp_path / "file" / "certs").install(pem(root[1]), "CSMSRootCertificate") == "Failed"


def test_delete(store, root):
    store.install(pem(root[1]), "CSMSRootCertificate")
    hash_data = expected_hash(root[1], root[0].public_key())
    other = {**hash_data, "serial_number": "1234"}
    assert store.delete(other) == "NotFound"
    # Uppercase hex and a leading zero in the serial still match.
    assert store.delete({**hash_data, "issuer_key_hash": hash_data["issuer_key_hash"].upper(),
                         "serial_number": "00ABCDEF"}) == "Accepted"
    assert store.list() == [] and store.delete(hash_data) == "NotFound"


def test_delete_with_sha384_hash_data(store, root):
    key, cert = root
    store.install(pem(cert), "CSMSRootCertificate")
    hash_data = {"hash_algorithm": "SHA384", "issuer_name_hash": hashlib.sha384(cert.issuer.public_bytes()).hexdigest(),
                 "issuer_key_hash": hashlib.sha384(key.public_key().public_bytes(
                     Encoding.X962, PublicFormat.UncompressedPoint)).hexdigest(),
                 "serial_number": "abcdef"}
    assert store.delete(hash_data) == "Accepted"


def test_ca_bundle(store, root):
    assert store.ca_bundle(["CSMSRootCertificate"]) is None
    _, other = make_cert("Other Root")
    store.install(pem(root[1]), "CSMSRootCertificate")
    store.install(pem(other), "CSMSRootCertificate")
    store.install(pem(make_cert("MO")[1]), "MORootCertificate")
    bundle = store.ca_bundle(["CSMSRootCertificate"])
    assert sorted(c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(bundle.read_bytes())) == \
        sorted([root[1].subject.rfc4514_string(), other.subject.rfc4514_string()])
    assert len(store.list()) == 3  # the bundle is not mistaken for a certificate


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize("csms", ["1.6"], indirect=True)
async def test_v16_install_list_delete(tmp_path, csms, root, monkeypatch):
    async with running_agent(agent_config(tmp_path, csms.url)) as running:
        assert running.core.certificates is not None  # the app wires a store in data_dir/certs
        await csms.wait_for_station("CP1")
        get = call16.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate")
        assert (await csms.call("CP1", get)).status == "NotFound"
        install = call16.InstallCertificate(certificate_type="CentralSystemRootCertificate", certificate=pem(root[1]))
        assert (await csms.call("CP1", install)).status == "Accepted"
        leaf = call16.InstallCertificate(certificate_type="ManufacturerRootCertificate",
                                         certificate=pem(make_cert("leaf", ca=False)[1]))
        assert (await csms.call("CP1", leaf)).status == "Rejected"
        result = await csms.call("CP1", get)
        hash_data = expected_hash(root[1], root[0].public_key())
        assert result.status == "Accepted" and result.certificate_hash_data == [hash_data]
        manufacturer = call16.GetInstalledCertificateIds(certificate_type="ManufacturerRootCertificate")
        assert (await csms.call("CP1", manufacturer)).status == "NotFound"
        delete = call16.DeleteCertificate(certificate_hash_data=hash_data)
        assert (await csms.call("CP1", delete)).status == "Accepted"
        assert (await csms.call("CP1", delete)).status == "NotFound"
        assert running.core.certificates.list() == []


@pytest.mark.parametrize("csms", ["2.0.1"], indirect=True)
async def test_v201_install_list_delete(tmp_path, csms, root, monkeypatch):
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version="2.0.1")) as running:
        assert running.core.certificates is not None  # the app wires a store in data_dir/certs
        await csms.wait_for_station("CP1")
        assert (await csms.call("CP1", call201.GetInstalledCertificateIds())).status == "NotFound"
        _, mo = make_cert("MO Root")
        for use, cert in (("CSMSRootCertificate", root[1]), ("MORootCertificate", mo)):
            install = call201.InstallCertificate(certificate_type=use, certificate=pem(cert))
            assert (await csms.call("CP1", install)).status == "Accepted"
        expired = call201.InstallCertificate(certificate_type="V2GRootCertificate",
                                             certificate=pem(make_cert("old", expired=True)[1]))
        assert (await csms.call("CP1", expired)).status == "Rejected"
        result = await csms.call("CP1", call201.GetInstalledCertificateIds(certificate_type=["CSMSRootCertificate"]))
        hash_data = expected_hash(root[1], root[0].public_key())
        assert result.status == "Accepted"
        assert result.certificate_hash_data_chain == [{"certificate_type": "CSMSRootCertificate",
                                                       "certificate_hash_data": hash_data}]
        every = await csms.call("CP1", call201.GetInstalledCertificateIds())
        assert sorted(c["certificate_type"] for c in every.certificate_hash_data_chain) == \
            ["CSMSRootCertificate", "MORootCertificate"]
        delete = call201.DeleteCertificate(certificate_hash_data=hash_data)
        assert (await csms.call("CP1", delete)).status == "Accepted"
        assert (await csms.call("CP1", delete)).status == "NotFound"
        assert [c["use"] for c in running.core.certificates.list()] == ["MORootCertificate"]
