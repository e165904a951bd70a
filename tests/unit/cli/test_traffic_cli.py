"""``driftloop traffic``: the requests it sends a server, how it shows the answer, the
errors it turns into one message and an exit code, and the history it reads itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from driftloop.cli import _traffic, app
from driftloop.core.config import load_settings
from driftloop.registry import Registry, TrafficStore

runner = CliRunner()

ANSWER = {
    "model": "fraud",
    "source": "runtime",
    "revision": 7,
    "changed_by": "ana",
    "changed_at": "2026-11-02T10:00:00+00:00",
    "reason": "try v8",
    "arms": [
        {"name": "champion", "version": 7, "weight": 90, "breaker": "closed"},
        {"name": "challenger", "version": 8, "weight": 10, "breaker": "open"},
    ],
    "sticky_key": "customer_id",
    "shadow": None,
    "shadow_sample": None,
}


class Server:
    """An in-memory server: records each request and answers with ``status`` and ``body``."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.status = 200
        self.body: Any = ANSWER
        self.refuse = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.refuse:
            raise httpx.ConnectError("Connection refused", request=request)
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)

    @property
    def sent(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Server:
    fake = Server()
    real: Callable[..., httpx.Client] = _traffic._client
    monkeypatch.setattr(
        _traffic,
        "_client",
        lambda url, token: real(url, token, transport=httpx.MockTransport(fake)),
    )
    (tmp_path / "driftloop.toml").write_text('[serving]\nhost = "0.0.0.0"\nport = 9123\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USER", "tester")
    monkeypatch.delenv("DRIFTLOOP_ADMIN_TOKEN", raising=False)
    return fake


def flat(text: str) -> str:
    """Output without Rich's line wrapping."""
    return " ".join(text.split())


def test_set_sends_the_policy_with_the_token_and_who_changes_it(server: Server) -> None:
    result = runner.invoke(
        app,
        [
            "traffic", "set", "fraud", "--arm", "champion=90", "--arm", "challenger=10",
            "--sticky", "customer_id", "--shadow", "challenger", "--shadow-sample", "0.1",
            "--reason", "try v8", "--token", "s3cret", "--by", "ana",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    request = server.requests[-1]
    assert (request.method, str(request.url)) == (
        "PUT",
        "http://127.0.0.1:9123/v1/models/fraud/traffic",
    )
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["X-Driftloop-Actor"] == "ana"
    assert server.sent == {
        "arms": {"champion": 90, "challenger": 10},
        "sticky_key": "customer_id",
        "shadow": "challenger",
        "shadow_sample": 0.1,
        "reason": "try v8",
    }
    assert "challenger" in result.output
    assert "Traffic of fraud" in result.output


def test_canary_is_a_share_taken_from_the_served_alias(server: Server) -> None:
    result = runner.invoke(app, ["traffic", "set", "fraud", "--canary", "challenger=25"])
    assert result.exit_code == 0, result.output
    assert server.sent == {
        "arms": {"champion": 75, "challenger": 25},
        "sticky_key": None,
        "shadow": None,
        "shadow_sample": None,
        "reason": "",
    }
    runner.invoke(app, ["traffic", "set", "fraud", "--canary", "v9=2.5", "--base", "stable"])
    assert server.sent["arms"] == {"stable": 97.5, "v9": 2.5}


def test_clear_sends_only_the_reason_and_the_actor_defaults_to_the_user(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLOOP_ADMIN_TOKEN", "from-env")
    result = runner.invoke(app, ["traffic", "set", "fraud", "--clear", "--reason", "done"])
    assert result.exit_code == 0, result.output
    assert server.sent == {"clear": True, "reason": "done"}
    assert server.requests[-1].headers["Authorization"] == "Bearer from-env"
    assert server.requests[-1].headers["X-Driftloop-Actor"] == "tester"


def test_show_prints_arms_with_versions_shares_and_breakers(server: Server) -> None:
    result = runner.invoke(app, ["traffic", "show", "fraud", "--url", "http://srv:1/"])
    assert result.exit_code == 0, result.output
    request = server.requests[-1]
    assert (request.method, str(request.url)) == ("GET", "http://srv:1/v1/models/fraud/traffic")
    assert "Authorization" not in request.headers
    out = flat(result.output)
    assert "champion │ v7 │ 90%" in out
    assert "challenger │ v8 │ 10% │ open" in out
    for line in ("sticky key: customer_id", "source: runtime", "revision: 7", "reason: try v8"):
        assert line in out


def test_show_json_prints_the_servers_answer_unchanged(server: Server) -> None:
    result = runner.invoke(app, ["traffic", "show", "fraud", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == ANSWER


def test_no_server_is_one_message_saying_how_to_start_one(server: Server) -> None:
    server.refuse = True
    result = runner.invoke(app, ["traffic", "show", "fraud"])
    assert result.exit_code == 1
    assert "no server at http://127.0.0.1:9123 (start it with driftloop serve)" in flat(
        result.output
    )


@pytest.mark.parametrize("status", [401, 403, 404, 422])
def test_a_refusal_prints_the_servers_own_message(server: Server, status: int) -> None:
    server.status = status
    server.body = {"error": {"code": "unauthorized", "message": "An admin token is required."}}
    result = runner.invoke(app, ["traffic", "set", "fraud", "--canary", "challenger=5"])
    assert result.exit_code == 1
    assert "An admin token is required." in flat(result.output)
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--arm", "champion"], "--arm"),
        (["--arm", "champion=ten"], "--arm"),
        (["--arm", "champion=-5", "--arm", "challenger=10"], "--arm"),
        (["--arm", "champion=0", "--arm", "challenger=0"], "--arm"),
        (["--arm", "champion=50", "--arm", "champion=50"], "--arm"),
        (["--canary", "challenger=140"], "--canary"),
        (["--canary", "challenger=5", "--arm", "champion=1"], "--canary"),
        (["--arm", "champion=1", "--shadow-sample", "0.5"], "--shadow-sample"),
        (["--arm", "champion=1", "--shadow", "c", "--shadow-sample", "2"], "--shadow-sample"),
        (["--clear", "--arm", "champion=1"], "--clear"),
        ([], "--arm"),
    ],
)
def test_bad_options_exit_2_naming_the_option_and_send_nothing(
    server: Server, args: list[str], named: str
) -> None:
    result = runner.invoke(app, ["traffic", "set", "fraud", *args])
    assert result.exit_code == 2, result.output
    assert named in flat(result.output)
    assert server.requests == []


def test_history_reads_who_changed_what_from_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "driftloop.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    registry = Registry.from_settings(load_settings(environ={}))
    registry.traffic.set("fraud", {"arms": {"champion": 90, "challenger": 10}}, who="ana", why="ab")
    registry.traffic.set("fraud", None, who="bo", why="rolled back")
    registry.traffic.set("churn", {"arms": {"champion": 100}}, who="zed")
    registry.close()

    result = runner.invoke(app, ["traffic", "history", "fraud"])
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert out.index("rolled back") < out.index("ab │")  # newest first
    assert "champion=90" in out
    assert "challenger=10" in out  # (the table may wrap the policy over two lines)
    assert "cleared" in out
    assert "zed" not in out  # another model's change

    as_json = runner.invoke(app, ["traffic", "history", "fraud", "--json", "--limit", "1"])
    assert [(s["revision"], s["changed_by"], s["policy"]) for s in json.loads(as_json.output)] == [
        (2, "bo", None)
    ]


def test_history_of_a_server_serving_a_models_folder_reads_the_project_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "driftloop.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(app, ["traffic", "history", "fraud", "--from-folder"])
    assert missing.exit_code == 2
    assert "does not exist: no traffic policy was set" in flat(missing.output)
    # where `driftloop serve --models FOLDER` keeps its policies
    store = TrafficStore.at("sqlite:///.driftloop/traffic.db", root=tmp_path)
    store.set("fraud", {"arms": {"challenger": 100}}, who="ana", why="all in")
    store.close()
    result = runner.invoke(app, ["traffic", "history", "fraud", "--from-folder", "--json"])
    assert result.exit_code == 0, result.output
    assert [s["changed_by"] for s in json.loads(result.output)] == ["ana"]
