"""The test suite; it mirrors the package layout (tests/agent/..., tests/hal/...), with end-to-end suites in
tests/e2e/ and shared helpers in tests/harness.py."""

from pathlib import Path

#: The repository root (docs/, config/, systemd/, scripts/ live here).
REPO_ROOT = Path(__file__).resolve().parent.parent
