"""Every page of the dashboard, on a project filled with generated data (tests/ui_world.py):
what a user comes to each page for is on it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from driftloop.audit import RouteSummary, open_audit_log, route_summary
from driftloop.serving import WorkerBoard, token_digest
from driftloop.ui import create_ui, standalone_ui
from ui_world import DAYS, DRIFT_DAY, MODEL, UiWorld, fill_project

PAGES = [
    "/ui/",
    "/ui/models",
    f"/ui/models/{MODEL}",
    f"/ui/models/{MODEL}/v/2",
    f"/ui/drift/{MODEL}",
    f"/ui/loop/{MODEL}",
    "/ui/features",
    "/ui/predictions",
    "/ui/traffic",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    return fill_project(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def client(world: UiWorld) -> Iterator[TestClient]:
    with TestClient(standalone_ui(world.settings, admin_digest=token_digest("s3cret"))) as c:
        yield c


def text(html: str) -> str:
    """The page's words, without tags, whitespace folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_and_links_every_other(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    for link in ("/ui/models", "/ui/traffic", "/ui/features", "/ui/predictions"):
        assert f'href="{link}"' in page.text
    assert "<script" not in page.text  # readable without JavaScript
    assert "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_root_leads_to_the_dashboard(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_overview_shows_aliases_split_verdict_and_performance(client: TestClient) -> None:
    words = text(client.get("/ui/").text)
    row = words[words.index(MODEL) :]
    assert row.startswith(f"{MODEL} (latest v3) v2 v3")  # champion v2, challenger v3
    assert "champion 90 / challenger 10" in row
    assert "canary 1 v3 since" in row  # the loop's rollout
    assert "by alice" in row
    assert "data-drift" in row  # the last judged window saw the planted drift
    assert re.search(r"roc_auc 0\.\d+ \d+ labels", row), row  # the newest labelled window


def test_drift_page_puts_the_drifted_feature_first_with_its_threshold(
    client: TestClient, world: UiWorld
) -> None:
    page = client.get(f"/ui/drift/{MODEL}")
    cards = re.findall(r'data-feature="([^"]+)"', page.text)
    assert cards[0] == "income", cards
    words = text(page.text)
    assert "Drifted: income" in words
    assert "income psi" in words
    assert "threshold 0.2" in words
    # income's chart marks the windows after the drift day over the threshold, none before
    titles = re.findall(r"<title>income (\S+ \S+): [^<]*?( \(over threshold\))?</title>", page.text)
    drift_starts = world.now - timedelta(days=DAYS - DRIFT_DAY)
    ends = {datetime.strptime(end, "%Y-%m-%d %H:%M").replace(tzinfo=UTC): bool(flag)
            for end, flag in titles}  # fmt: skip
    assert len(ends) >= DAYS - 1
    for end, over in ends.items():
        if end <= drift_starts:
            assert not over, end
        elif end >= drift_starts + timedelta(days=1):
            assert over, end


def test_loop_page_shows_the_rollout_and_the_numbers_of_each_decision(client: TestClient) -> None:
    page = client.get(f"/ui/loop/{MODEL}")
    words = text(page.text)
    assert "Rollout: canary (canary step 1) · champion v2 · challenger v3" in words
    assert 'aria-label="Decisions of the loop controller for loans"' in page.text
    rows = re.findall(r"<tr><td>[^<]+</td><td>(\w+)[^<]*</td><td>(\w+)</td>", page.text)
    assert rows == [("canary", "step"), ("shadow", "shadow"), ("gated", "gate"),
                    ("retraining", "retrain")]  # fmt: skip
    assert "roc_auc 0.82 champion_roc_auc 0.81" in words
    assert "drifted income" in words


def test_drift_page_shows_the_chosen_windows_histograms(client: TestClient) -> None:
    page = client.get(f"/ui/drift/{MODEL}")
    first = re.search(r"window=(\d+)\"", page.text)
    assert first is not None
    older = client.get(f"/ui/drift/{MODEL}?version=2&route=v1&window={first.group(1)}")
    assert older.status_code == 200
    assert "reference (bars) vs window" in older.text
    assert 'class="ref"' in older.text
    assert 'class="cur"' in older.text


def test_a_prediction_shows_inputs_times_explanation_and_later_label(
    client: TestClient, world: UiWorld
) -> None:
    page = client.get(f"/ui/predictions?id={world.explained_id}")
    words = text(page.text)
    assert f"Prediction {world.explained_id}" in words
    assert "later label" in words
    assert "not known yet" not in words.split("later label")[1][:40]
    assert 'aria-label="Explanation of prediction' in page.text
    assert "income: +0.31" in page.text
    assert "age: -0.12" in page.text
    assert "applicant_id=" in words
    assert "request" in words  # a feature that came with the request, not enriched


def test_an_unknown_prediction_is_named(client: TestClient) -> None:
    page = client.get("/ui/predictions?id=nope")
    assert "Prediction 'nope' is not in the audit log." in text(page.text)


def test_entity_lookup_lists_that_entitys_predictions(client: TestClient, world: UiWorld) -> None:
    page = client.get(f"/ui/predictions?entity=applicant_id={world.entity_value}")
    ids = re.findall(r"predictions\?id=(p\d+)", page.text)
    assert ids
    assert all(int(i[1:]) % 400 == int(world.entity_value) for i in ids)


def test_features_page_shows_freshness_and_null_rates(client: TestClient) -> None:
    page = client.get("/ui/features").text
    assert 'id="view-applicant"' not in page  # an entity has no rows to describe
    words = text(page)
    assert "applicant entity" in words
    assert "applicant_stats" in words
    assert "400 rows" in words
    assert re.search(r"tenure_years \S+ \d+\.\d%", words)
    assert "segment" in words


def test_traffic_page_counts_each_arm_from_the_audit_log(
    client: TestClient, world: UiWorld
) -> None:
    log = open_audit_log(world.settings.audit.url, root=world.root)
    try:
        arms = route_summary(log)
    finally:
        log.close()
    words = text(client.get("/ui/traffic").text)
    for arm in arms:
        assert f"v{arm.version} {arm.route}" in words
        assert str(arm.requests) in words
    assert any(a.fallback for a in arms)
    assert "fallback" in words
    assert "mean latency p50 p99 max latency" in words
    for arm in arms:  # each arm's p50 and p99, from its latency histogram
        p50, p99 = arm.latency_quantile(0.5), arm.latency_quantile(0.99)
        assert p50 is not None
        assert p99 is not None
        assert f"{p50:.2f} ms {p99:.2f} ms" in words
    assert "champion 90 (v2) / challenger 10 (v3)" in words
    every = text(client.get("/ui/traffic?days=30").text)
    total = sum(a.requests for a in route_summary_all(world))
    assert total == 3_000
    assert all(str(n) in every for n in (a.requests for a in route_summary_all(world)))
    assert client.get("/ui/traffic?days=lots").status_code == 200  # the default day


def route_summary_all(world: UiWorld) -> list[RouteSummary]:
    log = open_audit_log(world.settings.audit.url, root=world.root)
    try:
        return route_summary(log, last=timedelta(days=30))
    finally:
        log.close()


def test_model_page_has_versions_timeline_and_alias_at(client: TestClient) -> None:
    page = client.get(f"/ui/models/{MODEL}")
    assert 'aria-label="Alias history of loans"' in page.text
    assert "champion = version 2" in page.text
    asked = client.get(f"/ui/models/{MODEL}?at=2001-01-01T00:00")
    assert "champion = nothing" in text(asked.text)
    # a click on the first champion bar asks what served when v1 became champion
    first = re.search(r'<a href="(\?at=[^"]+)"><rect[^>]*><title>champion = version 1', page.text)
    assert first is not None
    clicked = text(client.get(f"/ui/models/{MODEL}{first.group(1)}").text)
    assert "champion = v1" in clicked


def test_version_page_shows_card_signature_lineage_and_gates(client: TestClient) -> None:
    words = text(client.get(f"/ui/models/{MODEL}/v/2").text)
    for expected in ("owns_home", "channel", "generated", "auc_vs_champion", "roc_auc"):
        assert expected in words


def test_unknown_model_is_a_404_page(client: TestClient) -> None:
    page = client.get("/ui/models/nothing")
    assert page.status_code == 404
    assert "nothing" in text(page.text)


def test_serve_mounts_the_dashboard_on_the_same_project(
    world: UiWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftloop.cli._serve import build_app

    app = build_app({"DRIFTLOOP_CONFIG": str(world.root / "driftloop.toml"),
                     "DRIFTLOOP_SERVE_AUDIT": "0"})  # fmt: skip
    page = TestClient(app).get("/ui/")  # the model server is not started: only /ui is asked
    assert page.status_code == 200
    assert 'href="/ui/models"' in page.text


def test_driftloop_ui_serves_the_same_project_alone(
    world: UiWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from driftloop.cli import app

    served: dict[str, object] = {}
    monkeypatch.setattr(
        uvicorn, "run", lambda dashboard, **options: served.update(options, app=dashboard)
    )
    config = str(world.root / "driftloop.toml")
    result = CliRunner().invoke(app, ["ui", "--port", "8123", "--config", config])
    assert result.exit_code == 0, result.output
    assert served["port"] == 8123
    page = TestClient(served["app"]).get("/ui/")  # type: ignore[arg-type]
    assert "loans" in page.text


def test_overview_shows_the_estimated_performance_when_monitoring_estimated_it(
    client: TestClient, world: UiWorld
) -> None:
    import json

    import sqlalchemy as sa

    from driftloop.monitoring import MonitoringStore

    store = MonitoringStore(world.settings.audit.url, root=world.root)
    w = store.windows
    try:
        with store.engine.begin() as conn:
            newest = conn.execute(
                sa.select(w.c.id, w.c.summary)
                .where(w.c.verdict != "insufficient-data")
                .order_by(w.c.window_end.desc(), w.c.rows.desc())
                .limit(1)
            ).one()
            summary = json.loads(newest.summary)
            summary["estimated_performance"] = {"dropped": False, "metrics": {"roc_auc": 0.777}}
            conn.execute(w.update().where(w.c.id == newest.id).values(summary=json.dumps(summary)))
        words = text(client.get("/ui/").text)
        assert "0.777 last window, before labels" in words
    finally:
        with store.engine.begin() as conn:
            conn.execute(w.update().where(w.c.id == newest.id).values(summary=newest.summary))
        store.dispose()


def test_traffic_page_shows_score_bins_and_the_last_step_checks_numbers(
    client: TestClient,
) -> None:
    page = client.get("/ui/traffic?days=30").text
    assert 'aria-label="Scores of loans version 2 on v1 (requests per bin)"' in page
    words = text(page)
    assert "Last step check" in words
    assert "step (canary 1) · no-regression requests 412 error_rate 0" in words


def test_without_a_server_reporting_breaker_states_are_unknown(client: TestClient) -> None:
    words = text(client.get("/ui/traffic").text)
    assert "Breaker states: unknown." in words
    assert "No server process of this project has reported serving" in words


def test_the_traffic_page_merges_every_workers_arms_and_marks_the_silent_stale(
    world: UiWorld, tmp_path: Path
) -> None:
    """Each worker keeps its own breakers: one has the challenger's open, another has
    not seen it fail, a third stopped reporting a minute ago."""
    now = [1_000.0]
    folder = tmp_path / "workers"

    def report(worker: str, at: float, challenger: str, failed: int, refused: int) -> None:
        now[0] = at
        WorkerBoard(folder, worker=worker, clock=lambda: now[0]).publish(
            {
                MODEL: [
                    {"name": "champion", "version": "2", "weight": 90.0, "breaker": "closed"},
                    {
                        "name": "challenger",
                        "version": "3",
                        "weight": 10.0,
                        "breaker": challenger,
                        "failed": failed,
                        "refused": refused,
                    },
                ]
            }
        )

    report("box-101", 1_000.0, "open", 5, 40)
    report("box-102", 999.0, "closed", 0, 0)
    report("box-103", 940.0, "half_open", 7, 2)  # silent for 60 s: stale
    board = WorkerBoard(folder, clock=lambda: 1_000.5)
    app = Starlette(routes=[Mount("/ui", create_ui(world.settings, board=board))])
    with TestClient(app) as served:
        page = served.get("/ui/traffic").text
    table = page[page.index(f'id="breakers-{MODEL}"') :]
    merged = text(table[: table.index("</table>")])
    # breakers over the two live workers; failed and refused calls over all three
    assert "champion v2 90% closed 0 0" in merged
    assert "challenger v3 10% closed on 1 of 2, open on 1 of 2 12 42" in merged
    workers = text(page[page.index(f'id="workers-{MODEL}"') :].split("</table>")[0])
    assert "box-101 0.5 s ago champion closed, challenger open" in workers
    assert (
        "box-103 60.5 s ago · stale (silent over 10 s) champion closed, challenger half_open"
        in (workers)
    )
    assert "Merged over 2 live server process(es) of 3" in text(page)
