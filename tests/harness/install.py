"""scripts/install.sh and scripts/uninstall.sh run staged into a DESTDIR, behind stub system commands.

The stubs (``STUBBED``, put first on PATH by the caller's ``bin_dir``) keep a DESTDIR install from ever
touching the machine running the tests.
"""

from __future__ import annotations

import os
import subprocess

from tests import REPO_ROOT

INSTALL = REPO_ROOT / "scripts" / "install.sh"
UNINSTALL = REPO_ROOT / "scripts" / "uninstall.sh"
#: The system commands the scripts call that a test replaces with a stub.
STUBBED = ("systemctl", "useradd", "usermod", "groupadd", "chown", "userdel")


def run(script, root, stubs, *, skip_venv=True, extra_env=None, timeout=60):
    """Run ``script`` with ``DESTDIR=root`` (unless None) and ``stubs`` = (bin_dir, calls log) first on PATH."""
    bin_dir, _ = stubs
    env = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "EXTRAS", "OCPP_AGENT_SKIP_VENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if root is not None:
        env["DESTDIR"] = str(root)
    if skip_venv:
        env["OCPP_AGENT_SKIP_VENV"] = "1"
    env.update(extra_env or {})
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=timeout)
