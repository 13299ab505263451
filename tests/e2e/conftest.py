"""Fixtures of the end-to-end suites: loopback traffic only, and a firmware-signing PKI.

The simulated CSMS, the state store and the transfer servers come from tests/conftest.py.
"""

from __future__ import annotations

import pytest

from tests.harness.certificates import make_root, make_signer


@pytest.fixture(autouse=True)
def _loopback_without_proxy(no_proxy):
    """A developer's proxy variables must not route the agent's loopback traffic elsewhere."""


@pytest.fixture(scope="module")
def root():
    """(key, certificate) of the manufacturer root that signs firmware (not a CSMS root)."""
    return make_root()


@pytest.fixture(scope="module")
def signer(root):
    """An RSA firmware signer issued by ``root``."""
    return make_signer(root, use_rsa=True)
