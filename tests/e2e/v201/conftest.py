"""The OCPP 2.0.1 end-to-end suites: the ``csms`` fixture speaks 2.0.1 here."""

import pytest


@pytest.fixture
def ocpp_version() -> str:
    """The OCPP version the ``csms`` fixture speaks."""
    return "2.0.1"
