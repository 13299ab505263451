"""What a 2.0.1 daemon loads before it needs it: code for a feature it may never use waits for first use.

The idle daemon's VmRSS (make bench, core2x_boot_idle) is mostly code and the names it interns. The
tariff arithmetic (only 2.1 prices), the tar archive writer (GetLog), the FTP client (firmware and log
transfers) and difflib (the "did you mean" of a mistaken name) are imported where they are first used;
this test fails if a module-level import of one comes back. A fresh interpreter imports what the
running 2.0.1 daemon imports, so other tests' imports do not hide one.
"""

from __future__ import annotations

import json
import subprocess
import sys

# The modules the 2.0.1 daemon has imported once it idles, connected (the app imports most of them lazily).
DAEMON_MODULES = (
    "agent.app",
    "agent.app_device_model",
    "agent.config",
    "agent.core.charging.station",
    "agent.core.management.firmware",
    "agent.core.management.log_upload",
    "agent.link.supervisor",
    "agent.protocol.v201.adapter",
    "agent.status.daemon",
    "hal.datafiles",
    "hal.registry",
)
LOADED_AT_FIRST_USE = ("agent.core.charging.tariffs", "tarfile", "ftplib", "difflib",
                       "agent.status.client")  # the other processes' side of the status socket


def _loaded_after_importing(modules) -> set[str]:
    code = (f"import importlib, json, sys\nfor name in {list(modules)!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout))


def test_the_2_0_1_daemon_modules_leave_feature_code_for_first_use():
    loaded = _loaded_after_importing(DAEMON_MODULES)
    assert "agent.protocol.v201.adapter" in loaded  # the import itself worked
    assert loaded.isdisjoint(LOADED_AT_FIRST_USE), sorted(loaded & set(LOADED_AT_FIRST_USE))
