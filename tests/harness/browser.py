"""Headless Debian chromium through selenium, driven as a person would: by visible labels and text.

The dashboard's acceptance finds controls by the words on screen, never by ids or classes, so the
helpers here do the same: :meth:`Browser.control` looks for the ``<label>`` whose text is the given
words and returns the control it names (its ``for`` attribute, or the control inside it).

Selenium is synchronous. A test whose agent runs in its own event loop calls these methods through
``asyncio.to_thread`` so the agent keeps serving while the browser waits.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP = (1280, 900)
PHONE = (390, 844)  # a common phone's CSS width: the dashboard must fit it


def available() -> str | None:
    """Why the browser tests cannot run here (None: they can). `make test` installs what they need."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return "needs Debian chromium and chromium-driver (make system-deps installs them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (the test extra)"
    return None


class Browser:
    """One headless chromium session; :meth:`quit` ends the browser and its driver."""

    def __init__(self, *, size: tuple[int, int] = DESKTOP):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", "--disable-background-networking",
                         f"--window-size={size[0]},{size[1]}"):
            options.add_argument(argument)
        # The dashboard is on loopback: a developer's proxy must not see (or break) it.
        options.add_argument("--no-proxy-server")
        # Selenium Manager must not try to download a driver: Debian's is the one to use.
        os.environ.setdefault("SE_OFFLINE", "true")
        service = Service(executable_path=str(CHROMEDRIVER), log_output=os.devnull)
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(15)

    # ------------------------------------------------------------------ navigation and page content

    def get(self, url: str) -> None:
        """Load ``url`` and wait for the document to be parsed."""
        self.driver.get(url)

    @property
    def source(self) -> str:
        """The page's HTML as the browser holds it now (after scripts ran)."""
        return self.driver.page_source

    @property
    def text(self) -> str:
        """The text a person sees on the page now."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def set_size(self, width: int, height: int) -> None:
        """Resize the window (e.g. to :data:`PHONE`)."""
        self.driver.set_window_size(width, height)

    def script(self, source: str, *args):
        """Run JavaScript in the page and return its result."""
        return self.driver.execute_script(source, *args)

    # ------------------------------------------------------------------ finding things as a person does

    def control(self, label: str):
        """The form control labelled ``label`` (the label's visible text, trimmed, case kept)."""
        from selenium.webdriver.common.by import By

        for element in self.driver.find_elements(By.TAG_NAME, "label"):
            if element.text.strip().rstrip(":").strip() != label:
                continue
            target = element.get_attribute("for")
            if target:
                return self.driver.find_element(By.ID, target)
            nested = element.find_elements(By.CSS_SELECTOR, "input, select, textarea, button")
            if nested:
                return nested[0]
        raise AssertionError(f"no control labelled {label!r}; labels: {self.labels()}")

    def labels(self) -> list[str]:
        """The visible texts of the page's labels (to explain a miss)."""
        from selenium.webdriver.common.by import By

        return [element.text.strip() for element in self.driver.find_elements(By.TAG_NAME, "label")]

    def buttons(self, text: str) -> list:
        """The buttons (or links) whose visible text, or accessible name, is ``text``."""
        from selenium.webdriver.common.by import By

        found = []
        for element in self.driver.find_elements(By.CSS_SELECTOR, "button, a, summary, [role=button]"):
            name = element.text.strip() or (element.get_attribute("aria-label") or "").strip()
            if name == text:
                found.append(element)
        return found

    def term(self, heading: str, term: str) -> str:
        """The value shown for ``term`` (a ``<dt>``) in the section titled ``heading`` ("" if absent)."""
        from selenium.webdriver.common.by import By

        xpath = (f"//section[.//*[self::h2 or self::h3][normalize-space()={_xpath_literal(heading)}]]"
                 f"//dt[normalize-space()={_xpath_literal(term)}]/following-sibling::dd[1]")
        found = self.driver.find_elements(By.XPATH, xpath)
        return found[0].text.strip() if found else ""

    def choose(self, label: str, option_text: str) -> None:
        """Pick the option showing ``option_text`` in the select labelled ``label``."""
        from selenium.webdriver.support.ui import Select

        Select(self.control(label)).select_by_visible_text(option_text)

    def options(self, label: str) -> list[str]:
        """The visible texts of the select labelled ``label``."""
        from selenium.webdriver.support.ui import Select

        return [option.text.strip() for option in Select(self.control(label)).options]

    def type_into(self, label: str, text: str) -> None:
        """Replace the text of the box labelled ``label`` with ``text``, as typing would."""
        box = self.control(label)
        box.clear()
        box.send_keys(text)

    def set_value(self, label: str, value: str) -> None:
        """Set an input that typing cannot fill portably (``datetime-local``) and fire its events."""
        self.script(
            "const el = arguments[0]; el.value = arguments[1];"
            "el.dispatchEvent(new Event('input', {bubbles: true}));"
            "el.dispatchEvent(new Event('change', {bubbles: true}));",
            self.control(label), value,
        )

    # ------------------------------------------------------------------ waiting

    def wait_for(self, predicate, *, timeout: float = 5.0, interval: float = 0.05, what: str = "condition"):
        """Poll ``predicate(self)`` until truthy; its value, or AssertionError naming ``what`` and the page."""
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout
        while True:
            try:
                result = predicate(self)
            except StaleElementReferenceException:  # the page re-rendered under us: look again
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not seen within {timeout:g} s; page text:\n{self.text[:2000]}")
            time.sleep(interval)

    def wait_for_text(self, text: str, *, timeout: float = 5.0) -> float:
        """Wait until ``text`` is visible on the page; the seconds it took."""
        started = time.monotonic()
        self.wait_for(lambda b: text in b.text, timeout=timeout, what=repr(text))
        return time.monotonic() - started

    def quit(self) -> None:
        """End the browser and chromedriver (never raises: teardown must go on)."""
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001  (a browser already gone is fine at teardown)
            pass


def chromium_version() -> str:
    """Chromium's version line, for reports."""
    import subprocess

    if shutil.which(str(CHROMIUM)) is None:
        return "chromium missing"
    return subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, check=False).stdout.strip()


def _xpath_literal(text: str) -> str:
    """``text`` as an XPath 1.0 string literal (which has no escapes: quotes need concat)."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"
