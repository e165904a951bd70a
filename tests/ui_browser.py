"""Helpers of the dashboard's browser tests (tests/browser/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOKEN = "browser-s3cret"
SCREENSHOTS = Path(__file__).parents[1] / "docs" / "img"


def console_errors(driver: Any) -> list[str]:
    """The browser console's errors since the last call."""
    return [str(e["message"]) for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: Any, name: str) -> None:
    """The whole page as docs/img/ui-<name>.png."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 600), 4000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"ui-{name}.png"))
    driver.set_window_size(1280, 1000)


def click_to_next_page(driver: Any, element: Any) -> None:
    """Click ``element`` and wait until the page it leads to has replaced this one."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element("css selector", "html")
    element.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(page))
