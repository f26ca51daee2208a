"""A real Chromium (Debian's chromium and chromium-driver), driven by Selenium, headless."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    missing = [p for p in (CHROMIUM, DRIVER) if not Path(p).exists()]
    assert not missing, f"missing {missing}: ./dev test installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The console as a person uses it: log in, click, wait for what the page shows."""

    def __init__(self, driver: webdriver.Chrome, url: str, shots: Path) -> None:
        self.driver, self.url, self.shots = driver, url, shots
        shots.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def login(self, token: str) -> None:
        """Until the console answers: the pool page, or the login page again saying why."""
        self.open("/ui/login")
        self.find("#token").send_keys(token)
        self.find("form button[type=submit]").click()
        self.wait(lambda: self.driver.current_url.endswith("/ui") or self.alert(), "the login's answer")

    def logout(self) -> None:
        self.find("header form.who button").click()
        self.wait(lambda: self.driver.current_url.endswith("/ui/login"), "the login page")

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def confirm(self) -> None:
        """Say yes to the page's confirmation dialog, once it is shown."""
        self.wait(lambda: expected_conditions.alert_is_present()(self.driver), "the confirmation").accept()

    def alert(self) -> str:
        """The text of the page's alerts (errors), empty if none."""
        return " ".join(e.text for e in self.all("[role=alert]"))

    def text(self) -> str:
        return str(self.find("body").text)

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        """Until ``check`` is truthy; the page replaces its live part every two seconds, so an
        element found a moment ago may be gone: that is a retry, not a failure."""
        return WebDriverWait(
            self.driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda _: check(), f"waited {timeout} s for {what}")

    def click(self, css: str) -> None:
        def clicked() -> bool:
            self.find(css).click()
            return True

        self.wait(clicked, f"{css} to click")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def mark(self) -> None:
        """Set a value that a page load would clear: `unreloaded` tells the page updated in place."""
        self.driver.execute_script("window.__takeoverMark = true")

    def unreloaded(self) -> bool:
        return bool(self.driver.execute_script("return window.__takeoverMark === true"))
