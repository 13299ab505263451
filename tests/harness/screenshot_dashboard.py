"""Take the README's dashboard screenshots: `.venv/bin/python -m tests.harness.screenshot_dashboard`.

Runs the real stack (test CSMS, `ocpp-agent run` on the mock HAL, `ocpp-agent web`), plays a charging
session on EVSE 1 (7.4 kW) with a cable waiting on EVSE 2, lets the power chart draw, and saves what
headless chromium shows: docs/dashboard.png (the status page) and docs/dashboard-log.png (the log).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.browser import Browser, available
from tests.harness.dashboard import DashboardStack

CARD = "04A1B2C3"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def take(*, out_dir: Path, charge_s: float) -> list[Path]:
    """Play the session and save the screenshots; the paths written."""
    written = []
    with tempfile.TemporaryDirectory(prefix="ocpp-screenshot-") as tmp, \
            DashboardStack(Path(tmp), sample_s=2) as stack:
        browser = Browser(size=(1280, 860))
        try:
            browser.get(stack.base_url + "/")
            browser.wait_for_text("EVSE 1")
            stack.sim("plug", "1")
            stack.sim("tap", CARD)
            stack.sim("ev", "1", "charge")
            stack.sim("power", "1", "3700")
            time.sleep(charge_s / 2)
            stack.sim("power", "1", "7400")  # a step in the chart
            stack.sim("plug", "2")
            time.sleep(charge_s / 2)
            browser.wait_for(lambda b: "kWh" in b.term("EVSE 1", "Energy"), timeout=10, what="energy on EVSE 1")
            path = out_dir / "dashboard.png"
            browser.driver.save_screenshot(str(path))
            written.append(path)
            browser.get(stack.base_url + "/log")
            browser.wait_for_text("MeterValues")
            path = out_dir / "dashboard-log.png"
            browser.driver.save_screenshot(str(path))
            written.append(path)
        finally:
            browser.quit()
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--out DIR`` (default docs/), ``--charge-s`` (how long the session runs first)."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness.screenshot_dashboard", description=__doc__)
    parser.add_argument("--out", type=Path, default=DOCS)
    parser.add_argument("--charge-s", type=float, default=20.0)
    args = parser.parse_args(argv)
    missing = available()
    if missing:
        print(f"screenshot_dashboard: {missing}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for path in take(out_dir=args.out, charge_s=args.charge_s):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
