"""Fixtures the whole suite shares: a simulated CSMS, a state store, loopback file-transfer servers.

The CSMS
--------
``csms`` is a started :class:`~agent.testcsms.server.CsmsSimulator`, stopped at teardown. It speaks
the version of the ``ocpp_version`` fixture: "1.6", or "2.0.1" under tests/e2e/v201. A module may
override that fixture (with ``params`` to run each test on both versions), a test may parametrize it
(``@pytest.mark.parametrize("ocpp_version", ["2.0.1"])``) or parametrize ``csms`` itself indirectly
(``@pytest.mark.parametrize("csms", ["2.0.1"], indirect=True)``).
``@pytest.mark.csms(heartbeat_interval=1, ...)``, on a test or as a module's ``pytestmark``, sets
fields of its ``CsmsBehaviour``; the heartbeat interval is 300 s unless said. ``csms16`` and
``csms201`` are one of each, for a module that tests both versions side by side, and ``csms_factory``
starts as many more as a test needs.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.harness")  # a helper's failed assert shows its values, as in a test

from agent.runtime.store import StateStore  # noqa: E402  (after the assert rewrite is registered)
from agent.testcsms.server import CsmsBehaviour, CsmsSimulator  # noqa: E402
from tests.harness import transfer_servers  # noqa: E402

#: The simulator's heartbeat interval unless a test asks otherwise: long enough to stay out of the way.
QUIET_HEARTBEAT_S = 300


def pytest_configure(config):
    """Declare the ``csms`` marker."""
    config.addinivalue_line("markers", "csms(**behaviour): CsmsBehaviour fields for the csms fixtures")


def csms_behaviour(request) -> dict:
    """The ``CsmsBehaviour`` fields the closest ``csms`` marker asks for (none: the defaults)."""
    marker = request.node.get_closest_marker("csms")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
async def csms_factory():
    """``await csms_factory(version, ssl_context=..., **behaviour)``: a started simulator, stopped at teardown."""
    started: list[CsmsSimulator] = []

    async def start(ocpp_version: str = "1.6", *, ssl_context=None, **behaviour) -> CsmsSimulator:
        behaviour.setdefault("heartbeat_interval", QUIET_HEARTBEAT_S)
        simulator = CsmsSimulator(ocpp_version=ocpp_version, behaviour=CsmsBehaviour(**behaviour),
                                  ssl_context=ssl_context)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in reversed(started):
        await simulator.stop()


@pytest.fixture
def ocpp_version() -> str:
    """The OCPP version the ``csms`` fixture speaks."""
    return "1.6"


@pytest.fixture
async def csms(request, csms_factory, ocpp_version):
    """A started simulator speaking ``ocpp_version`` (or the indirect parameter), as the ``csms`` marker says."""
    return await csms_factory(getattr(request, "param", ocpp_version), **csms_behaviour(request))


@pytest.fixture
async def csms16(request, csms_factory):
    """A started OCPP 1.6 simulator, as the ``csms`` marker says."""
    return await csms_factory("1.6", **csms_behaviour(request))


@pytest.fixture
async def csms201(request, csms_factory):
    """A started OCPP 2.0.1 simulator, as the ``csms`` marker says."""
    return await csms_factory("2.0.1", **csms_behaviour(request))


@pytest.fixture
def db_path(tmp_path):
    """Where the ``store`` fixture keeps its database."""
    return tmp_path / "state.sqlite"


@pytest.fixture
def store(db_path):
    """An open :class:`StateStore` at ``db_path``, closed at teardown."""
    with StateStore(db_path) as opened:
        yield opened


# ------------------------------------------------------------------ loopback file-transfer servers


@pytest.fixture
def no_proxy(monkeypatch):
    """A developer's proxy variables must not route 127.0.0.1 traffic elsewhere."""
    for name in ("http_proxy", "https_proxy", "ftp_proxy", "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http_server(no_proxy):
    """A loopback HTTP server offering the firmware image at /fw/image-2.0.bin, keeping uploads."""
    with transfer_servers.http_server() as server:
        yield server


@pytest.fixture
def ftp_server(no_proxy):
    """A loopback FTP server offering the firmware image at /pub/image-2.0.bin, keeping uploads."""
    with transfer_servers.ftp_server() as server:
        yield server


@pytest.fixture
def tls_pki(tmp_path_factory, monkeypatch, no_proxy):
    """A test CA the agent trusts through SSL_CERT_FILE (as a board trusts its system store)."""
    from tests.certs import make_pki  # cryptography loads only for the tests that need it

    pki = make_pki(tmp_path_factory.mktemp("pki"))
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca.cert))
    return pki


@pytest.fixture
def https_server(tls_pki):
    """The HTTP server behind TLS, with a certificate for 127.0.0.1 from ``tls_pki``'s CA."""
    from tests.certs import server_ssl_context

    with transfer_servers.http_server(tls=server_ssl_context(tls_pki.server)) as server:
        yield server


@pytest.fixture
def ftps_server(tls_pki):
    """Explicit FTPS (AUTH TLS, PROT P) with a certificate for 127.0.0.1 from ``tls_pki``'s CA."""
    from tests.certs import server_ssl_context

    with transfer_servers.ftp_server(tls=server_ssl_context(tls_pki.server)) as server:
        yield server
