"""Helpers of the dashboard's browser tests (tests/browser/)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from services import free_port

TOKEN = "browser-s3cret"
SCREENSHOTS = Path(__file__).parents[1] / "docs" / "img"


def console_errors(driver: Any) -> list[str]:
    """The browser console's errors since the last call."""
    return [str(e["message"]) for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: Any, name: str) -> None:
    """The whole page as docs/img/ui-<name>.png."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(1280, min(max(int(height), 600), 4000) + max(int(chrome), 0))
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


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 (its base URL) until exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the dashboard server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
