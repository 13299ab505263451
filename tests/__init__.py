"""The test suite; it mirrors the package layout (tests/agent/..., tests/hal/...), with end-to-end suites in
tests/e2e/, shared fixtures in the conftest.py files and shared helpers in tests/harness/ (a test module
never imports another: tests/test_architecture.py checks it)."""

from pathlib import Path

#: The repository root (docs/, config/, systemd/, scripts/ live here).
REPO_ROOT = Path(__file__).resolve().parent.parent
