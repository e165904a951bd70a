"""What a user does in the dashboard, in a real browser: every page loads cleanly, the
drift chart points at the drifted feature, a prediction is found by id with its
explanation and label, and a rollback needs the admin token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.registry import Registry
from ui_browser import TOKEN, click_to_next_page, console_errors, screenshot
from ui_world import DAYS, DRIFT_DAY, MODEL, UiWorld

pytestmark = pytest.mark.browser

PAGES = {
    "overview": "/ui/",
    "models": "/ui/models",
    "model": f"/ui/models/{MODEL}",
    "version": f"/ui/models/{MODEL}/v/2",
    "drift": f"/ui/drift/{MODEL}",
    "loop": f"/ui/loop/{MODEL}",
    "features": "/ui/features",
    "predictions": "/ui/predictions",
    "traffic": "/ui/traffic",
    "split": f"/ui/traffic/{MODEL}/split?arm_champion=50&arm_challenger=50",
    "promote": f"/ui/models/{MODEL}/promote?alias=champion&version=3",
}


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_without_console_errors(browser: Any, base_url: str, name: str) -> None:
    console_errors(browser)  # forget earlier pages' messages
    browser.get(base_url + PAGES[name])
    assert browser.title.endswith("· driftloop")
    assert by_css(browser, "main h1").text
    assert console_errors(browser) == []
    screenshot(browser, name)


def test_the_drift_chart_shows_the_planted_drift_on_income(
    browser: Any, base_url: str, world: UiWorld
) -> None:
    browser.get(f"{base_url}/ui/drift/{MODEL}")
    first = by_css(browser, "#feature-charts .card")
    assert first.get_attribute("data-feature") == "income"
    assert "drifted" in first.get_attribute("class")
    over = first.find_elements("css selector", "circle.over")
    assert over, "no window of income is drawn over its threshold"
    drift_starts = world.now - timedelta(days=DAYS - DRIFT_DAY)
    for point in over:  # each names its window's end: after the drift began
        title = point.find_element("css selector", "title").get_attribute("textContent")
        end = datetime.strptime(title.split(": ")[0][len("income ") :], "%Y-%m-%d %H:%M")
        assert end.replace(tzinfo=UTC) > drift_starts, title
    assert by_css(browser, "#drifted").text == "income"


def test_a_prediction_found_by_id_shows_its_explanation_and_label(
    browser: Any, base_url: str, world: UiWorld
) -> None:
    browser.get(f"{base_url}/ui/predictions")
    field = by_css(browser, "input[name=id]")
    field.send_keys(world.explained_id)
    click_to_next_page(browser, by_css(browser, "form button"))
    assert by_css(browser, "#prediction").text == f"Prediction {world.explained_id}"
    chart = by_css(browser, "#explanation svg")
    assert chart.get_attribute("aria-label") == f"Explanation of prediction {world.explained_id}"
    assert "income" in chart.text
    assert "not known yet" not in by_css(browser, "#label").text
    screenshot(browser, "prediction")


def test_a_rollback_needs_the_admin_token_then_moves_the_alias(
    browser: Any, base_url: str, world: UiWorld
) -> None:
    browser.get(f"{base_url}/ui/models/{MODEL}")
    click_to_next_page(browser, by_css(browser, "#rollback-champion"))
    assert "moves it to v1" in by_css(browser, "#what").text
    screenshot(browser, "rollback")
    by_css(browser, "input[name=actor]").send_keys("dora")
    click_to_next_page(browser, by_css(browser, "#confirm"))  # no token
    assert by_css(browser, "main h1").text == "Refused"
    assert alias(world) == 2

    browser.get(f"{base_url}/ui/models/{MODEL}/rollback?alias=champion")
    by_css(browser, "input[name=token]").send_keys(TOKEN)
    by_css(browser, "input[name=actor]").send_keys("dora")
    by_css(browser, "input[name=reason]").send_keys("canary failed")
    click_to_next_page(browser, by_css(browser, "#confirm"))
    assert browser.current_url.endswith(f"/ui/models/{MODEL}")
    assert alias(world) == 1
    latest = by_css(browser, "#alias-history tr:nth-child(2)").text
    assert latest == f"{latest[:23]} champion v2 → v1 rollback dora canary failed"


def test_a_promotion_needs_the_admin_token_then_moves_the_alias(
    browser: Any, base_url: str, world: UiWorld
) -> None:
    before = alias(world)
    browser.get(f"{base_url}/ui/models/{MODEL}")
    click_to_next_page(browser, by_css(browser, "#promote-challenger"))
    assert "promoting moves it to v3" in by_css(browser, "#what").text
    by_css(browser, "input[name=actor]").send_keys("erin")
    click_to_next_page(browser, by_css(browser, "#confirm"))  # no token
    assert by_css(browser, "main h1").text == "Refused"
    assert alias(world) == before

    browser.get(f"{base_url}/ui/models/{MODEL}/promote?alias=champion&version=3")
    by_css(browser, "input[name=token]").send_keys(TOKEN)
    by_css(browser, "input[name=actor]").send_keys("erin")
    by_css(browser, "input[name=reason]").send_keys("canary passed")
    click_to_next_page(browser, by_css(browser, "#confirm"))
    assert browser.current_url.endswith(f"/ui/models/{MODEL}")
    assert alias(world) == 3
    latest = by_css(browser, "#alias-history tr:nth-child(2)").text
    assert latest == f"{latest[:23]} champion v{before} → v3 move erin canary passed"
    screenshot(browser, "model")


def alias(world: UiWorld) -> int:
    registry = Registry.from_settings(world.settings)
    try:
        return registry.alias_version(MODEL, "champion")
    finally:
        registry.close()


def test_the_traffic_page_shows_every_workers_breakers_and_the_silent_one_stale(
    browser: Any, base_url: str
) -> None:
    """From the worker board (tests/browser/conftest.py: one live worker with the
    challenger's breaker open, one silent)."""
    browser.get(f"{base_url}/ui/traffic")
    arms = by_css(browser, f"#breakers-{MODEL}").text
    assert "challenger v3 10% open 20 164" in arms
    workers = by_css(browser, f"#workers-{MODEL}").text
    assert "web-1-4712" in workers
    assert "stale (silent over 10 s)" in workers
    assert "p99" in by_css(browser, "table.arms").text
