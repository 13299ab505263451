"""The dashboard in a real browser: headless Debian chromium against `ocpp-agent web`, the real daemon on
the mock HAL and the test CSMS (tests/harness/dashboard.py). Controls are found by their visible labels
and values by the words a person reads (CONTRACT.md, "Web dashboard and status API").

One stack and one browser serve the whole module (they take seconds to start); each test puts the
station back as it found it.
"""

from __future__ import annotations

import json
import time
import urllib.error

import pytest

from tests.harness.browser import PHONE, Browser, available
from tests.harness.dashboard import CSMS_PASSWORD, STATION_ID, config_text, stop_process

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

CARD = "04A1B2C3"
LIVE_S = 2.0  # the contract: a change shows within 2 s, without a reload


def _mark_page(browser: Browser) -> None:
    """Leave a mark in the page's window: it survives live updates, not a reload."""
    browser.script("window.__notReloaded = true;")


def _not_reloaded(browser: Browser) -> bool:
    return browser.script("return window.__notReloaded === true;") is True


def _evse_value(term: str, expected: str, *, evse: int = 1):
    """A wait predicate: the EVSE card shows ``expected`` in its ``term`` row."""
    return lambda b: expected in b.term(f"EVSE {evse}", term)


def test_status_page_shows_a_card_per_evse_and_the_connection(dashboard, browser):
    browser.get(dashboard.base_url + "/")
    browser.wait_for_text("EVSE 1")
    assert "EVSE 2" in browser.text
    assert browser.term("EVSE 1", "Status") == "Available"
    assert browser.term("EVSE 1", "Transaction") == "none"
    assert browser.term("CSMS connection", "CSMS") == "Connected"
    assert browser.term("CSMS connection", "OCPP version") == "1.6"
    url = browser.term("CSMS connection", "URL")
    assert url.startswith("ws://127.0.0.1:") and "@" not in url


def test_a_charging_session_shows_without_a_reload(dashboard, browser):
    browser.get(dashboard.base_url + "/")
    browser.wait_for_text("EVSE 1")
    _mark_page(browser)
    try:
        dashboard.sim("plug", "1")
        browser.wait_for(_evse_value("Status", "Preparing"), timeout=LIVE_S, what="Preparing on EVSE 1")
        dashboard.sim("tap", CARD)
        dashboard.sim("power", "1", "7400")
        dashboard.sim("ev", "1", "charge")
        snapshot = dashboard.wait_for_status(lambda s: s["evses"][0]["transaction_id"] and
                                             s["evses"][0]["status"] == "Charging" and s["evses"][0]["power_W"],
                                             what="charging on EVSE 1", timeout=10)
        transaction = str(snapshot["evses"][0]["transaction_id"])
        browser.wait_for(_evse_value("Transaction", transaction), timeout=LIVE_S, what="the transaction id")
        browser.wait_for(_evse_value("Status", "Charging"), timeout=LIVE_S, what="Charging on EVSE 1")
        browser.wait_for(_evse_value("Power", "7.40 kW"), timeout=LIVE_S, what="7.40 kW on EVSE 1")
        browser.wait_for(lambda b: "kWh" in b.term("EVSE 1", "Energy"), timeout=5, what="the session's energy")
        assert _not_reloaded(browser)
    finally:
        dashboard.sim("unplug", "1")
    browser.wait_for(_evse_value("Transaction", "none"), timeout=5, what="the session's end")
    browser.wait_for(_evse_value("Status", "Available"), timeout=5, what="Available after the session")
    assert _not_reloaded(browser)


def test_a_fault_shows_without_a_reload(dashboard, browser):
    browser.get(dashboard.base_url + "/")
    browser.wait_for_text("EVSE 1")
    _mark_page(browser)
    dashboard.sim("fault", "1", "meter-offline")
    try:
        snapshot = dashboard.wait_for_status(lambda s: s["evses"][0]["faults"], what="a fault on EVSE 1", timeout=10)
        fault = snapshot["evses"][0]["faults"][0]
        browser.wait_for(_evse_value("Faults", fault), timeout=LIVE_S, what=f"fault {fault!r} on EVSE 1")
        assert _not_reloaded(browser)
    finally:
        dashboard.sim("clear", "1", "meter-offline")
    browser.wait_for(_evse_value("Faults", "none"), timeout=10, what="the fault cleared")


def test_the_log_filters_by_their_labels_and_shows_a_frame(dashboard, browser):
    browser.get(dashboard.base_url + "/log")
    browser.wait_for(lambda b: _rows(b), what="log rows")
    everything = _rows(browser)
    assert "BootNotification" in browser.options("Action")
    assert {"in", "out"} <= set(browser.options("Direction"))

    browser.choose("Action", "BootNotification")
    browser.wait_for(lambda b: _rows(b) and all("BootNotification" in row for row in _rows(b)),
                     what="only BootNotification rows")
    assert len(_rows(browser)) < len(everything)
    browser.choose("Direction", "out")
    browser.wait_for(lambda b: len(_rows(b)) == 1, what="the one BootNotification the station sent")

    # The frame on demand: the control labelled JSON shows it, pretty-printed.
    browser.buttons("JSON")[0].click()
    browser.wait_for(lambda b: '"chargePointVendor": "Acme"' in b.text, what="the BootNotification's JSON")

    browser.choose("Direction", _all_option(browser.options("Direction")))
    browser.choose("Action", _all_option(browser.options("Action")))
    browser.type_into("Search", STATION_ID + "-no-such-text")
    browser.wait_for(lambda b: not _rows(b), what="no row for a text no frame holds")
    browser.type_into("Search", "Acme")
    browser.wait_for(lambda b: _rows(b) and all("BootNotification" in row for row in _rows(b)),
                     what="the frames holding 'Acme'")
    browser.type_into("Search", "")

    # From/To in the browser's local time: tomorrow on, nothing; up to yesterday, nothing.
    tomorrow = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 86400))
    yesterday = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 86400))
    browser.set_value("From", tomorrow)
    browser.wait_for(lambda b: not _rows(b), what="no rows from tomorrow on")
    browser.set_value("From", yesterday)
    browser.wait_for(lambda b: len(_rows(b)) >= len(everything), what="every row since yesterday")
    browser.set_value("To", yesterday)
    browser.wait_for(lambda b: not _rows(b), what="no rows up to yesterday")
    browser.set_value("To", "")
    browser.set_value("From", "")


def test_a_new_frame_appears_in_the_log_without_a_reload(dashboard, browser):
    browser.get(dashboard.base_url + "/log")
    browser.wait_for(lambda b: _rows(b), what="log rows")
    _mark_page(browser)
    before = len(_rows(browser))
    dashboard.sim("plug", "2")  # a StatusNotification (Preparing) goes out
    try:
        browser.wait_for(lambda b: len(_rows(b)) > before and "StatusNotification" in _rows(b)[0],
                         timeout=LIVE_S + 1, what="the new StatusNotification on top")
        assert _not_reloaded(browser)
    finally:
        dashboard.sim("unplug", "2")


def test_no_secret_on_any_page(dashboard, browser):
    for path in ("/", "/log", "/sessions", "/config"):
        browser.get(dashboard.base_url + path)
        browser.wait_for(lambda b: b.text, what=f"{path} rendered")
        assert CSMS_PASSWORD not in browser.source, path
    assert "***" in browser.source  # /config shows where the password is, masked
    for path in ("/api/status", "/api/log?limit=1000", f"/api/log?q={CSMS_PASSWORD}"):
        _, _, body = dashboard.http_get(path)
        assert CSMS_PASSWORD.encode() not in body, path
    assert json.loads(dashboard.http_get(f"/api/log?q={CSMS_PASSWORD}")[2])["frames"] == []


def test_a_password_guards_every_page_and_the_browser_gets_in_with_it(dashboard, browser):
    guarded = dashboard.directory / "guarded.toml"
    guarded.write_text(config_text(data_dir=dashboard.data_dir, csms_url=dashboard.csms.url,
                                   ocpp_version=dashboard.ocpp_version, web_password="pw-7f3a"))
    process, port = dashboard.spawn_web(guarded, log_name="web-guarded.log")
    try:
        for path, auth in (("/", False), ("/api/status", False), ("/log", ("admin", "wrong")),
                           ("/api/log", ("someone", "pw-7f3a"))):
            with pytest.raises(urllib.error.HTTPError) as refused:
                dashboard.http_get(path, auth=auth, port=port)
            assert refused.value.code == 401, path
            assert refused.value.headers["WWW-Authenticate"].startswith("Basic"), path
        status, _, body = dashboard.http_get("/api/status", auth=("admin", "pw-7f3a"), port=port)
        assert status == 200 and json.loads(body)["connected"] is True

        # A person's browser with the credentials: the page works, live updates included.
        browser.get(f"http://admin:pw-7f3a@127.0.0.1:{port}/")
        browser.wait_for(_evse_value("Status", "Available"), what="the guarded status page")
        dashboard.sim("plug", "1")
        try:
            browser.wait_for(_evse_value("Status", "Preparing"), timeout=LIVE_S, what="a live update behind the password")
        finally:
            dashboard.sim("unplug", "1")
    finally:
        stop_process(process)


def test_phone_width_shows_the_cards_without_sideways_scrolling(dashboard, browser):
    browser.set_size(*PHONE)
    try:
        browser.get(dashboard.base_url + "/")
        browser.wait_for_text("EVSE 2")
        overflow = browser.script("return document.documentElement.scrollWidth - window.innerWidth;")
        assert overflow <= 0, f"{overflow} px wider than the phone's screen"
        assert browser.term("EVSE 1", "Status") == "Available"
    finally:
        browser.set_size(1280, 900)


# ------------------------------------------------------------------ reading the log table


def _rows(browser: Browser) -> list[str]:
    """The visible text of each frame row of the log's table, top (newest) first (one script call)."""
    return browser.script(
        "return Array.from(document.querySelectorAll('table tbody tr'))"
        ".filter(row => row.offsetParent !== null && row.innerText.includes('JSON'))"
        ".map(row => row.innerText);")


def _all_option(options: list[str]) -> str:
    """The option of the Action select that means every action (its wording is the page's)."""
    return next(option for option in options if option.lower().startswith("all") or option.lower() == "any")
