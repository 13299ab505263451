"""The OCPP 2.1 end-to-end suites: the ``csms`` fixture speaks 2.1 here (the test CSMS on the library's
v21 schemas, strict both ways), and the agent with it (``tests.harness.v201.config`` follows the CSMS)."""

import pytest


@pytest.fixture
def ocpp_version() -> str:
    """The OCPP version the ``csms`` fixture speaks."""
    return "2.1"
