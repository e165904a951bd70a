"""The dashboard in a real headless Chromium (the system's ``chromium`` and
``chromedriver``, driven by Selenium), against a uvicorn server on 127.0.0.1 serving a
project filled with generated data. Skipped with the reason when the browser is missing;
a failure under ``DRIFTLOOP_REQUIRE_SERVICES=1`` (as in CI, whose .ci/run installs it)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from driftloop.serving import WorkerBoard, token_digest
from driftloop.ui import standalone_ui
from services import unavailable
from ui_browser import TOKEN, serving
from ui_world import MODEL, UiWorld, fill_project


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    world = fill_project(tmp_path_factory.mktemp("ui-browser"))
    report_workers(world)
    return world


def report_workers(world: UiWorld) -> None:
    """Two server processes' reports on the project's worker board, as ``driftloop
    serve --workers 2`` writes them: one has the challenger's breaker open after its
    calls failed; the other stopped reporting (stale). The live one is dated an hour
    ahead so it stays live for the whole session (its age reads 0)."""
    board = WorkerBoard.of_project(world.settings)
    arms = [
        {"name": "champion", "version": "2", "weight": 90.0, "breaker": "closed", "failed": 0,
         "refused": 0},
        {"name": "challenger", "version": "3", "weight": 10.0, "breaker": "open", "failed": 20,
         "refused": 164},
    ]  # fmt: skip
    ahead = WorkerBoard(board.folder, worker="web-1-4711", clock=lambda: time.time() + 3600)
    ahead.publish({MODEL: arms})
    silent = WorkerBoard(board.folder, worker="web-1-4712", clock=lambda: time.time() - 95)
    silent.publish({MODEL: [{**a, "breaker": "closed", "failed": 0, "refused": 0} for a in arms]})


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
