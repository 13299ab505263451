"""The OCPP 2.0.1 end-to-end suites: the ``csms`` fixture speaks 2.0.1 here.

2.1 extends 2.0.1, so the modules in ``ALSO_UNDER_21`` run every test that uses the ``csms``
fixture under 2.1 too (ids ``[2.0.1]`` and ``[2.1]``): the core transaction flow, the device
model, smart charging, firmware and monitoring. The other modules stay 2.0.1 only, to keep the
default suite within its time budget; 2.1's own behaviour is in tests/e2e/v21.
"""

import pytest

#: Modules whose tests also run against a 2.1 CSMS with a 2.1 agent.
ALSO_UNDER_21 = frozenset({"test_core", "test_firmware", "test_monitoring"})
#: Their tests that stay 2.0.1 only, and why (2.1's side of each is tested in tests/e2e/v21).
ONLY_201 = {
    "test_monitoring_base_level_and_report": "asserts a severity of -1 (2.1's schema refuses it before it is sent) "
                                             "and a report without 2.1's required eventNotificationType",
}


@pytest.fixture
def ocpp_version() -> str:
    """The OCPP version the ``csms`` fixture speaks."""
    return "2.0.1"


def pytest_generate_tests(metafunc):
    """Run the tests of ``ALSO_UNDER_21`` under both versions (unless a test names its version itself)."""
    if metafunc.module.__name__.rsplit(".", 1)[-1] not in ALSO_UNDER_21 or metafunc.function.__name__ in ONLY_201:
        return
    named = any("ocpp_version" in marker.args[0] for marker in metafunc.definition.iter_markers("parametrize"))
    if "ocpp_version" in metafunc.fixturenames and not named:
        metafunc.parametrize("ocpp_version", ["2.0.1", "2.1"])
