"""``driftloop traffic ...``: a served model's traffic policy (A/B split, canary, shadow).

``show`` and ``set`` talk to a running server (``GET`` / ``PUT
/v1/models/{name}/traffic``), which applies a change on every worker and every machine
sharing its registry; ``history`` reads who changed what from the registry itself.

The body ``set`` sends::

    {"arms": {"champion": 90, "challenger": 10}, "sticky_key": "customer_id" | null,
     "shadow": "challenger" | null, "shadow_sample": 0.1 | null, "reason": "..."}

or ``{"clear": true, "reason": "..."}``, with the headers ``Authorization: Bearer
<token>`` and ``X-Driftloop-Actor: <who>``. The server answers both verbs with the
policy in force::

    {"model": "fraud", "alias": "champion", "source": "config" | "runtime",
     "revision": 3, "changed_by": "ana", "changed_at": "...", "reason": "...",
     "arms": [{"name": "champion", "version": "3", "weight": 90.0, "breaker": "closed"}],
     "sticky_key": ..., "shadow": ..., "shadow_version": ..., "shadow_sample": ...}

Errors come back as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, err_console, exit_on_error
from driftloop.core.config import load_settings
from driftloop.core.errors import InvalidParameterError
from driftloop.registry import Registry, TrafficState, TrafficStore

__all__ = ["traffic_app"]

traffic_app = typer.Typer(
    help="Traffic policies of served models: A/B splits, canaries, shadows.",
    no_args_is_help=True,
)
app.add_typer(traffic_app, name="traffic")

_CONFIG = typer.Option(None, "--config", help="Settings file.")
_URL = typer.Option(None, "--url", help="Server URL (default http://serving.host:serving.port).")
_TOKEN = typer.Option(
    None, "--token", help="Admin token (default: environment variable DRIFTLOOP_ADMIN_TOKEN)."
)
_JSON = typer.Option(False, "--json", help="Print JSON (for scripts).", metavar="")
_TIMEOUT_S = 10.0
# A server bound to every address is reached on loopback.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


def _client(
    url: str, token: str | None, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """The HTTP client every command uses (tests hand it an in-memory transport)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=_TIMEOUT_S, transport=transport)


def _server(url: str | None, config_file: Path | None) -> str:
    if url:
        return url.rstrip("/")
    serving = load_settings(config_file, environ=os.environ).serving
    host = _ANY_ADDRESS.get(serving.host, serving.host)
    return f"http://{host}:{serving.port}"


def _token(token: str | None) -> str | None:
    return token or os.environ.get("DRIFTLOOP_ADMIN_TOKEN") or None


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error[/]: {escape(message)}", highlight=False)
    return typer.Exit(code=1)


def _server_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['message']} ({response.status_code} {error['code']})"
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:500] or response.reason_phrase
        return f"the server answered {response.status_code}: {text}"


def _call(
    method: str,
    url: str,
    token: str | None,
    model: str,
    *,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One request to the traffic endpoint; any failure exits 1 with what went wrong."""
    path = f"/v1/models/{quote(model, safe='')}/traffic"
    try:
        with _client(url, token) as client:
            response = client.request(method, path, json=body, headers=headers)
    except httpx.ConnectError:
        raise _fail(f"no server at {url} (start it with driftloop serve)") from None
    except httpx.TimeoutException:
        raise _fail(f"the server at {url} did not answer within {_TIMEOUT_S:g} s") from None
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the server at {url}: {exc}") from None
    if response.is_error:
        raise _fail(_server_error(response))
    try:
        data = response.json()
    except ValueError:
        raise _fail(f"the server at {url} answered {method} {path} with no JSON") from None
    if not isinstance(data, dict):
        raise _fail(f"the server at {url} answered {method} {path} with {data!r}")
    return data


# -- the policy, as sent -------------------------------------------------------------------


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _pair(spec: str, option: str) -> tuple[str, float]:
    name, sep, number = spec.partition("=")
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if not sep or not name.strip() or value != value:  # NaN: not a number
        raise InvalidParameterError(
            f"{option} {spec!r}: expected NAME=NUMBER (e.g. challenger=10)."
        )
    return name.strip(), value


def parse_arms(specs: list[str], canary: str | None, base: str) -> dict[str, int | float]:
    """``--arm NAME=WEIGHT ...`` or ``--canary NAME=PERCENT`` as arm -> weight."""
    if specs and canary:
        raise InvalidParameterError("--canary and --arm cannot be combined: give one or the other.")
    if canary:
        name, percent = _pair(canary, "--canary")
        if not 0 <= percent <= 100 or name == base:
            raise InvalidParameterError(
                f"--canary {canary!r}: expected an arm other than {base!r} and a percent "
                "from 0 to 100."
            )
        return {base: _number(100 - percent), name: _number(percent)}
    arms: dict[str, int | float] = {}
    for spec in specs:
        name, weight = _pair(spec, "--arm")
        if weight < 0 or weight == float("inf"):
            raise InvalidParameterError(f"--arm {spec!r}: a weight must be 0 or more.")
        if name in arms:
            raise InvalidParameterError(f"--arm {name!r} is given twice.")
        arms[name] = _number(weight)
    if arms and sum(arms.values()) <= 0:
        raise InvalidParameterError(f"--arm weights sum to 0 ({', '.join(specs)}): no arm serves.")
    return arms


def policy_body(
    arms: dict[str, int | float],
    *,
    sticky_key: str | None,
    shadow: str | None,
    shadow_sample: float | None,
    clear: bool,
    reason: str,
) -> dict[str, Any]:
    """The JSON body of ``PUT .../traffic``."""
    if clear:
        if arms or sticky_key or shadow or shadow_sample is not None:
            raise InvalidParameterError(
                "--clear goes back to the settings file's policy: give it without "
                "--arm, --canary, --sticky, --shadow or --shadow-sample."
            )
        return {"clear": True, "reason": reason}
    if not arms:
        raise InvalidParameterError(
            "Give the arms with --arm NAME=WEIGHT (e.g. --arm champion=100 --shadow challenger) "
            "or --canary NAME=PERCENT, or --clear."
        )
    if shadow_sample is not None and shadow is None:
        raise InvalidParameterError("--shadow-sample needs --shadow NAME.")
    if shadow_sample is not None and not 0 < shadow_sample <= 1:
        raise InvalidParameterError(
            f"--shadow-sample {shadow_sample:g}: expected a share above 0 and at most 1."
        )
    return {
        "arms": arms,
        "sticky_key": sticky_key,
        "shadow": shadow,
        "shadow_sample": (1.0 if shadow_sample is None else shadow_sample) if shadow else None,
        "reason": reason,
    }


# -- the policy, as shown ------------------------------------------------------------------


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else escape(str(value))


def print_policy(model: str, data: Mapping[str, Any]) -> None:
    """A server's answer as a table of arms and the policy's other settings."""
    arms = [dict(a) for a in data.get("arms") or () if isinstance(a, Mapping)]
    total = sum(float(a.get("weight") or 0) for a in arms)
    table = Table(title=f"Traffic of {escape(str(data.get('model') or model))}")
    for column in ("arm", "version", "weight", "breaker"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for arm in arms:
        weight = float(arm.get("weight") or 0)
        share = f"{100 * weight / total:.4g}%" if total > 0 else "-"
        breaker = arm.get("breaker")
        version = arm.get("version")
        table.add_row(
            _text(arm.get("name")),
            "-" if version is None else f"v{version}",
            share,
            _text(breaker),
        )
    console.print(table)
    shadow = data.get("shadow")
    sample = data.get("shadow_sample")
    if shadow is not None and sample is not None:
        shadow = f"{shadow} ({100 * float(sample):.4g}% of requests)"
    lines = {
        "sticky key": data.get("sticky_key"),
        "shadow": shadow,
        "source": data.get("source"),
        "revision": data.get("revision"),
        "changed by": data.get("changed_by"),
        "changed at": data.get("changed_at"),
        "reason": data.get("reason"),
    }
    for label, value in lines.items():
        console.print(f"{label + ':':<12} {_text(value)}", highlight=False)


# -- commands ------------------------------------------------------------------------------


@traffic_app.command()
def show(
    model: str = typer.Argument(..., help="Served model name."),
    url: str | None = _URL,
    token: str | None = _TOKEN,
    as_json: bool = _JSON,
    config_file: Path | None = _CONFIG,
) -> None:
    """The traffic policy a running server applies to MODEL (arms, weights, breakers)."""
    with exit_on_error():
        server = _server(url, config_file)
    data = _call("GET", server, _token(token), model)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    print_policy(model, data)


@traffic_app.command("set")
def set_policy(
    model: str = typer.Argument(..., help="Served model name."),
    arm: list[str] = typer.Option(
        [], "--arm", help="An arm and its weight, NAME=WEIGHT (repeat: --arm champion=90 ...)."
    ),
    canary: str | None = typer.Option(
        None, "--canary", help="NAME=PERCENT: that share to NAME, the rest to --base."
    ),
    base: str = typer.Option("champion", "--base", help="The arm --canary takes its share from."),
    sticky: str | None = typer.Option(
        None, "--sticky", help="Request field that keeps a caller on one arm (e.g. customer_id)."
    ),
    shadow: str | None = typer.Option(
        None, "--shadow", help="Arm that also scores requests, unseen by callers."
    ),
    shadow_sample: float | None = typer.Option(
        None, "--shadow-sample", help="Share of requests the shadow scores (default 1)."
    ),
    clear: bool = typer.Option(
        False, "--clear", help="Drop the run-time policy: back to the settings file's.", metavar=""
    ),
    reason: str = typer.Option("", "--reason", help="Why (kept in the policy's history)."),
    by: str | None = typer.Option(None, "--by", help="Who changes it (default $USER)."),
    url: str | None = _URL,
    token: str | None = _TOKEN,
    as_json: bool = _JSON,
    config_file: Path | None = _CONFIG,
) -> None:
    """Change MODEL's traffic policy on a running server (every worker, within a second)."""
    with exit_on_error():
        body = policy_body(
            parse_arms(arm, canary, base),
            sticky_key=sticky,
            shadow=shadow,
            shadow_sample=shadow_sample,
            clear=clear,
            reason=reason,
        )
        server = _server(url, config_file)
    actor = by or os.environ.get("USER") or "driftloop"
    data = _call(
        "PUT", server, _token(token), model, body=body, headers={"X-Driftloop-Actor": actor}
    )
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    print_policy(model, data)


@contextmanager
def _store(config_file: Path | None, from_folder: bool) -> Iterator[TrafficStore]:
    settings = load_settings(config_file, environ=os.environ)
    if from_folder:  # ``driftloop serve --models FOLDER`` keeps them in the project
        path = settings.state_dir() / "traffic.db"
        if not path.is_file():
            raise InvalidParameterError(
                f"{path} does not exist: no traffic policy was set on a server serving a "
                "models folder from this project."
            )
        store = TrafficStore.at(f"sqlite:///{path.resolve()}")
        try:
            yield store
        finally:
            store.close()
        return
    registry = Registry.from_settings(settings)
    try:
        yield registry.traffic
    finally:
        registry.close()


def _summary(policy: Mapping[str, Any] | None) -> str:
    if policy is None:
        return "(cleared: the settings file's policy)"
    parts = [" ".join(f"{a}={w}" for a, w in dict(policy.get("arms") or {}).items())]
    if policy.get("sticky_key"):
        parts.append(f"sticky {policy['sticky_key']}")
    if policy.get("shadow"):
        sample = policy.get("shadow_sample")
        share = f" ({100 * float(sample):.4g}%)" if sample is not None else ""
        parts.append(f"shadow {policy['shadow']}{share}")
    return ", ".join(p for p in parts if p)


def _state_json(state: TrafficState) -> dict[str, Any]:
    return {
        "model": state.model,
        "revision": state.revision,
        "policy": state.policy,
        "changed_by": state.changed_by,
        "changed_at": state.changed_at.isoformat(),
        "reason": state.reason,
    }


@traffic_app.command()
def history(
    model: str = typer.Argument(..., help="Served model name."),
    limit: int = typer.Option(50, "--limit", help="How many changes, newest first."),
    from_folder: bool = typer.Option(
        False,
        "--from-folder",
        help="The server serves a models folder (serve --models): read the project's "
        ".driftloop/traffic.db, not the registry.",
        metavar="",
    ),
    as_json: bool = _JSON,
    config_file: Path | None = _CONFIG,
) -> None:
    """Who changed MODEL's traffic policy, when, to what and why (read from the registry)."""
    with exit_on_error(), _store(config_file, from_folder) as store:
        states = store.history(model, limit)
    if as_json:
        typer.echo(json.dumps([_state_json(s) for s in states], indent=2))
        return
    if not states:
        console.print(f"No traffic policy was ever set for {escape(model)}.")
        return
    table = Table(title=f"Traffic policy history of {escape(model)}")
    for column in ("revision", "changed at (UTC)", "by", "policy", "reason"):
        table.add_column(column)
    for s in states:
        table.add_row(
            str(s.revision),
            f"{s.changed_at:%Y-%m-%d %H:%M:%S}",
            escape(s.changed_by),
            escape(_summary(s.policy)),
            _text(s.reason),
        )
    console.print(table)
