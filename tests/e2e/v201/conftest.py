"""The OCPP 2.0.1 end-to-end suites: the ``csms`` fixture speaks 2.0.1 here.

2.1 extends 2.0.1, so the tests ``ALSO_UNDER_21`` names (every test of a module, or some) run under
2.1 too, with a 2.1 CSMS and agent (ids ``[2.0.1]`` and ``[2.1]``): the core transaction flow, the
device model, smart charging, monitoring, and firmware updates signed and not. The rest stays 2.0.1
only, to keep the default suite within its time budget; 2.1's own behaviour is in tests/e2e/v21.
"""

import pytest

#: Per module, the tests that also run under 2.1 (None: every test that uses the ``csms`` fixture).
ALSO_UNDER_21 = {
    "test_core": None,
    "test_monitoring": None,
    "test_firmware": frozenset({"test_signed_update_is_verified_then_installed",
                                "test_unsigned_update_is_installed_without_verification",
                                "test_trigger_reports_idle_without_request_id_then_the_running_job"}),
}
#: Tests of those modules that stay 2.0.1 only, and why (2.1's side of each is tested in tests/e2e/v21).
ONLY_201 = {
    "test_monitoring_base_level_and_report": "asserts a severity of -1 (2.1's schema refuses it before it is sent) "
                                             "and a report without 2.1's required eventNotificationType",
}


@pytest.fixture
def ocpp_version() -> str:
    """The OCPP version the ``csms`` fixture speaks."""
    return "2.0.1"


def pytest_generate_tests(metafunc):
    """Run the tests ``ALSO_UNDER_21`` names under both versions (unless a test names its version itself)."""
    chosen = ALSO_UNDER_21.get(metafunc.module.__name__.rsplit(".", 1)[-1], frozenset())
    test = metafunc.function.__name__
    if test in ONLY_201 or (chosen is not None and test not in chosen):
        return
    named = any("ocpp_version" in marker.args[0] for marker in metafunc.definition.iter_markers("parametrize"))
    if "ocpp_version" in metafunc.fixturenames and not named:
        metafunc.parametrize("ocpp_version", ["2.0.1", "2.1"])
