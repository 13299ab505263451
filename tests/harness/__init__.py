"""Helpers the tests share; no test module imports another, they all import from here.

- ``tests.harness`` (this package): an in-process agent on the mock HAL (``agent_config``,
  ``running_agent``) and ``wait_until``, from :mod:`tests.harness.agent`;
- :mod:`tests.harness.v16`, :mod:`tests.harness.v201`: driving a station and reading what the simulated
  CSMS received, in the words of each OCPP version (the same helper names in both);
- :mod:`tests.harness.firmware`: a firmware job wired with a test's install command, signed FirmwareType;
- :mod:`tests.harness.certificates`: certificates made on the fly, and a firmware-signing PKI;
- :mod:`tests.harness.install`: the install scripts run into a DESTDIR behind stub system commands;
- :mod:`tests.harness.transfer_servers`: loopback HTTP(S) and FTP(S) servers with the firmware image;
- :mod:`tests.harness.fakes`: small stand-ins for the agent's parts (``MemoryStore``).
- :mod:`tests.harness.storage`: a full data_dir (a tmpfs mounted by the test, filled), one storage fault
  measured against a charging agent, and what reached the CSMS.
- :mod:`tests.harness.faketime`: the real daemon on a board clock made wrong and stepped with libfaketime.
- :mod:`tests.harness.toml_text`: TOML text for the agent configs tests write (``toml_value``, ``write_toml``).
- :mod:`tests.harness.web`: ``ocpp-agent web`` as a subprocess on a free loopback port (``running_web``), and
  the config file it reads beside an agent's data_dir (``web_config_file``).
- :mod:`tests.harness.dashboard`: the whole dashboard stack as it ships (test CSMS in a thread, the daemon
  ``ocpp-agent run`` on the mock HAL, ``ocpp-agent web``), for browser tests, the bench and screenshots;
- :mod:`tests.harness.browser`: headless Debian chromium through selenium, controls found by their labels;
- :mod:`tests.harness.screenshot_dashboard`: ``python -m tests.harness.screenshot_dashboard`` redoes the
  README's docs/dashboard.png and docs/dashboard-log.png.

Fixtures (a started CSMS simulator, a state store...) live in the conftest.py files.
"""

from tests.harness.agent import FAST_RETRY, agent_config, running_agent, wait_until

__all__ = ["FAST_RETRY", "agent_config", "running_agent", "wait_until"]
