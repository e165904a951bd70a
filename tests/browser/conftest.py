"""The dashboard in a real headless Chromium (the system's ``chromium`` and
``chromedriver``, driven by Selenium), against a uvicorn server on 127.0.0.1 serving a
project filled with generated data. Skipped with the reason when the browser is missing;
a failure under ``DRIFTLOOP_REQUIRE_SERVICES=1`` (as in CI, whose .ci/run installs it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from driftloop.serving import token_digest
from driftloop.ui import standalone_ui
from services import unavailable
from ui_browser import TOKEN, serving
from ui_world import UiWorld, fill_project


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    return fill_project(tmp_path_factory.mktemp("ui-browser"))


@pytest.fixture(scope="session")
def base_url(world: UiWorld) -> Iterator[str]:
    with serving(standalone_ui(world.settings, admin_digest=token_digest(TOKEN))) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        unavailable("chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
