"""The dashboard under API keys in a real browser: the login form sets a cookie the
browser sends back on every page (and scripts cannot read), the key sees its tenant's
models only, and an admin key's promotion goes through with the form's CSRF token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from driftloop.core.config import Settings, load_settings
from driftloop.registry import Registry
from driftloop.ui import standalone_ui
from ui_browser import click_to_next_page, console_errors, screenshot, serving
from ui_world import MODEL, fill_project

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Keyed:
    url: str
    settings: Settings
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    """A project under ``serving.auth = "keys"``, served alone: tenant default owns
    ``loans``, tenant beta owns ``rival``."""
    world = fill_project(tmp_path_factory.mktemp("ui-browser-keys"), predictions=500)
    toml = world.root / "driftloop.toml"
    toml.write_text(toml.read_text() + '\n[serving]\nauth = "keys"\n')
    settings = load_settings(toml, environ={})
    registry = Registry.from_settings(settings)
    try:
        mv = registry.get(MODEL, 1)
        registry.register_files(
            "rival", "sklearn", {"model": b"rival"}, signature=mv.signature, alias="champion",
            tenant="beta",
        )  # fmt: skip
        secrets = {
            "admin": registry.keys.create("default", ["read", "admin"], name="ops", who="t")[1],
            "reader": registry.keys.create("default", ["read"], name="look", who="t")[1],
        }
    finally:
        registry.close()
    with serving(standalone_ui(settings)) as url:
        yield Keyed(url, settings, secrets)


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def log_in(browser: Any, keyed: Keyed, who: str, then: str = "/") -> None:
    browser.delete_all_cookies()
    browser.get(f"{keyed.url}/ui{then}")  # leads to the login form
    assert by_css(browser, "main h1").text == "Log in"
    by_css(browser, "input[name=key]").send_keys(keyed.secrets[who])
    click_to_next_page(browser, by_css(browser, "#login"))


def test_a_key_logs_in_and_sees_only_its_tenants_models(browser: Any, keyed: Keyed) -> None:
    console_errors(browser)
    log_in(browser, keyed, "reader", "/models")
    assert browser.current_url == f"{keyed.url}/ui/models"
    assert "loans" in by_css(browser, "main").text
    assert "rival" not in by_css(browser, "main").text
    assert "tenant default" in by_css(browser, "#who").text
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly
    assert console_errors(browser) == []
    browser.get(f"{keyed.url}/ui/models/rival")  # another tenant's: as if it did not exist
    assert by_css(browser, "main h1").text == "Not found"
    browser.get(f"{keyed.url}/ui/login")
    screenshot(browser, "login")


def test_a_promotion_with_an_admin_key_is_recorded_with_the_key(browser: Any, keyed: Keyed) -> None:
    log_in(browser, keyed, "admin", f"/models/{MODEL}")
    click_to_next_page(browser, by_css(browser, "#promote-challenger"))
    assert "Acting as API key" in by_css(browser, "main").text
    click_to_next_page(browser, by_css(browser, "#confirm"))
    assert browser.current_url.endswith(f"/ui/models/{MODEL}")
    latest = by_css(browser, "#alias-history tr:nth-child(2)").text
    assert "champion v2 → v3 move key:" in latest
    registry = Registry.from_settings(keyed.settings)
    try:
        assert registry.alias_version(MODEL, "champion") == 3
    finally:
        registry.close()


def test_a_read_only_key_is_refused_an_action(browser: Any, keyed: Keyed) -> None:
    log_in(browser, keyed, "reader", f"/models/{MODEL}/rollback?alias=challenger")
    click_to_next_page(browser, by_css(browser, "#confirm"))
    assert by_css(browser, "main h1").text == "Refused"
    assert "lacks the admin scope" in by_css(browser, "#message").text
