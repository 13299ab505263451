"""Firmware signature checks of the core (agent.core.management.firmware): the signing certificate's chain to
the manufacturer roots, and the image signature (SHA-256, RSA PKCS#1 v1.5 and ECDSA).

The signing PKI comes from tests.harness.certificates, shared with the end-to-end firmware tests.
"""

import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.management.certificates import CSMS_ROOT, CertificateStore
from agent.core.management.firmware_signature import (
    manufacturer_roots,
    signature_valid,
    signing_certificate_problem,
)
from tests.harness.certificates import install_root, make_root, make_signer, pem


@pytest.fixture(scope="module")
def root():
    return make_root()


@pytest.fixture(scope="module")
def ec_signer(root):
    return make_signer(root)


@pytest.fixture(scope="module")
def rsa_signer(root):
    return make_signer(root, use_rsa=True)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image.bin"
    path.write_bytes(b"\x7fELF firmware " * 10000)  # larger than one read chunk
    return path


# ------------------------------------------------------------------ image signature


@pytest.mark.parametrize("signer_name", ["ec_signer", "rsa_signer"])
def test_signature_of_the_image_verifies(request, image, signer_name):
    signer = request.getfixturevalue(signer_name)
    assert signature_valid(image, signer.sign(image.read_bytes()), signer.pem)


@pytest.mark.parametrize("signer_name", ["ec_signer", "rsa_signer"])
def test_signature_of_a_changed_image_fails(request, image, signer_name):
    signer = request.getfixturevalue(signer_name)
    signature = signer.sign(image.read_bytes())
    image.write_bytes(image.read_bytes()[:-1] + b"!")
    assert not signature_valid(image, signature, signer.pem)


def test_signature_by_another_key_fails(image, root, ec_signer):
    impostor = make_signer(root)
    assert not signature_valid(image, impostor.sign(image.read_bytes()), ec_signer.pem)


def test_signature_that_is_not_base64_fails(image, ec_signer):
    assert not signature_valid(image, "not base64!", ec_signer.pem)
    assert not signature_valid(image, "", ec_signer.pem)


def test_signature_wrapped_over_lines_verifies(image, rsa_signer):
    signature = rsa_signer.sign(image.read_bytes())
    wrapped = "\n".join(signature[i:i + 64] for i in range(0, len(signature), 64))
    assert signature_valid(image, wrapped, rsa_signer.pem)


def test_signature_with_a_signing_chain_uses_the_first_certificate(image, root):
    signer = make_signer(root, via_intermediate=True)
    assert signature_valid(image, signer.sign(image.read_bytes()), signer.pem)


# ------------------------------------------------------------------ signing certificate


def test_signing_certificate_issued_by_an_installed_root_is_accepted(root, ec_signer, rsa_signer):
    assert signing_certificate_problem(ec_signer.pem, [root[1]], now=time.time()) is None
    assert signing_certificate_problem(rsa_signer.pem, [root[1]], now=time.time()) is None


def test_signing_certificate_through_an_intermediate_is_accepted(root):
    signer = make_signer(root, via_intermediate=True)
    assert signing_certificate_problem(signer.pem, [root[1]], now=time.time()) is None


def test_signing_certificate_through_a_non_ca_intermediate_is_refused(root):
    signer = make_signer(root, via_intermediate=True, intermediate_ca=False)
    assert "does not chain" in signing_certificate_problem(signer.pem, [root[1]], now=time.time())


def test_signing_certificate_of_another_root_is_refused(root):
    other = make_root("Someone Else")
    signer = make_signer(other)
    assert "does not chain" in signing_certificate_problem(signer.pem, [root[1]], now=time.time())
    assert "does not chain" in signing_certificate_problem(signer.pem, [], now=time.time())


def test_signing_certificate_with_the_roots_name_but_another_key_is_refused(root):
    forged_root = (ec.generate_private_key(ec.SECP256R1()), root[1])  # same subject, other key
    signer = make_signer(forged_root)
    assert "does not chain" in signing_certificate_problem(signer.pem, [root[1]], now=time.time())


def test_expired_signing_certificate_is_refused(root):
    signer = make_signer(root, expired=True)
    assert "expired" in signing_certificate_problem(signer.pem, [root[1]], now=time.time())


def test_signing_certificate_under_an_expired_root_is_refused():
    old_root = make_root(expired=True)
    signer = make_signer(old_root)
    assert signing_certificate_problem(signer.pem, [old_root[1]], now=time.time()) is not None


def test_signing_certificate_whose_key_usage_excludes_signatures_is_refused(root):
    assert signing_certificate_problem(make_signer(root, key_usage=True).pem, [root[1]], now=time.time()) is None
    problem = signing_certificate_problem(make_signer(root, key_usage=False).pem, [root[1]], now=time.time())
    assert "key usage" in problem


def test_signing_certificate_that_is_not_pem_is_refused(root):
    assert signing_certificate_problem("hello", [root[1]], now=time.time()) == "not a PEM certificate"


def test_manufacturer_roots_are_read_from_the_certificate_store(tmp_path, root):
    store = CertificateStore(tmp_path / "certs")
    assert manufacturer_roots(store) == [] and manufacturer_roots(None) == []
    csms_root = make_root("CSMS Root")
    assert store.install(pem(csms_root[1]), CSMS_ROOT) == "Accepted"
    install_root(store, root)
    assert manufacturer_roots(store) == [root[1]]  # a CSMS root may not sign firmware


def test_importing_the_firmware_modules_does_not_load_cryptography():
    code = ("import sys, agent.core.management.firmware, agent.protocol.v16.firmware, agent.protocol.v201.firmware;"
            "sys.exit('cryptography' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
