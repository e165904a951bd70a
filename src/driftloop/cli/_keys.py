"""``driftloop keys ...``: API keys of tenants, kept (hashed) in the registry's database.

``create`` prints the new key's secret once; nothing keeps it, so a lost key is revoked
and replaced. Every creation, revocation and quota change is recorded with who made it
(``--actor``, else the user name), as ``keys events`` shows. A running server picks a
change up within ``serving.key_refresh_s`` (1 s).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error
from driftloop.core.config import load_settings
from driftloop.core.errors import InvalidParameterError
from driftloop.registry import SCOPES, ApiKey, KeyStore, Registry

__all__ = ["keys_app", "parse_expiry", "parse_rate"]

keys_app = typer.Typer(help="API keys of tenants: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

_CONFIG = typer.Option(None, "--config", help="Settings file.")
_ACTOR = typer.Option(None, "--actor", help="Who makes the change (default: $USER).")
_JSON = typer.Option(False, "--json", help="Print JSON (for scripts).", metavar="")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_RATE = re.compile(r"^(\d+(?:\.\d+)?)/([smh])$")


def parse_expiry(value: str | None, now: datetime) -> datetime | None:
    """``30d``, ``12h``, ``15m``, ``90s`` from ``now``; None: never expires.

    >>> parse_expiry("30d", datetime(2026, 1, 1, tzinfo=UTC)).isoformat()
    '2026-01-31T00:00:00+00:00'
    """
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if match is None or int(match[1]) == 0:
        raise InvalidParameterError(
            f"--expires {value!r}: expected a number and a unit s, m, h or d (e.g. 30d)."
        )
    return now + timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])


def parse_rate(value: str | None) -> float | None:
    """``100/s``, ``600/m`` or ``3600/h`` as requests per second; None: no limit.

    >>> parse_rate("600/m")
    10.0
    """
    if value is None:
        return None
    match = _RATE.match(value.strip())
    if match is None or float(match[1]) <= 0:
        raise InvalidParameterError(
            f"--rate {value!r}: expected requests per s, m or h (e.g. 100/s)."
        )
    return float(match[1]) / _UNIT_S[match[2]]


@contextmanager
def _store(config_file: Path | None) -> Iterator[KeyStore]:
    registry = Registry.from_settings(load_settings(config_file, environ=os.environ))
    try:
        yield registry.keys
    finally:
        registry.close()


def _who(actor: str | None) -> str:
    return actor or os.environ.get("USER", "driftloop")


def _row(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": key.created_at.isoformat(),
        "created_by": key.created_by,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "rate_per_s": key.rate_per_s,
        "burst": key.burst,
    }


@keys_app.command("create")
def create(
    tenant: str = typer.Option("default", "--tenant", help="The tenant the key acts for."),
    scope: list[str] = typer.Option(
        ..., "--scope", help=f"A scope ({', '.join(SCOPES)}); repeat for several."
    ),
    name: str = typer.Option("", "--name", help="What the key is for."),
    expires: str | None = typer.Option(None, "--expires", help="Lifetime, e.g. 30d, 12h."),
    rate: str | None = typer.Option(None, "--rate", help="Rate limit, e.g. 100/s, 600/m."),
    burst: int | None = typer.Option(None, "--burst", help="Requests at once (default: rate/s)."),
    actor: str | None = _ACTOR,
    as_json: bool = _JSON,
    config_file: Path | None = _CONFIG,
) -> None:
    """Make a key and print its secret, once: it is stored only as a SHA-256."""
    with exit_on_error(), _store(config_file) as store:
        key, secret = store.create(
            tenant,
            scope,
            who=_who(actor),
            name=name,
            expires_at=parse_expiry(expires, datetime.now(UTC)),
            rate_per_s=parse_rate(rate),
            burst=burst,
        )
    if as_json:
        console.print_json(json.dumps({**_row(key), "secret": secret}))
        return
    console.print(f"key [bold]{key.id}[/] of tenant {key.tenant}: {', '.join(key.scopes)}")
    console.print("secret (shown once, keep it now):", highlight=False)
    console.print(secret, highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_keys(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's keys."),
    as_json: bool = _JSON,
    config_file: Path | None = _CONFIG,
) -> None:
    """Every key (never a secret), revoked ones included."""
    with exit_on_error(), _store(config_file) as store:
        keys = store.list(tenant)
    if as_json:
        console.print_json(json.dumps([_row(k) for k in keys]))
        return
    table = Table(title="API keys")
    for column in ("id", "tenant", "name", "scopes", "expires", "revoked", "rate"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.id,
            key.tenant,
            key.name,
            ", ".join(key.scopes),
            f"{key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "never",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
            f"{key.rate_per_s:g}/s burst {key.burst}" if key.rate_per_s else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (from keys list)."),
    actor: str | None = _ACTOR,
    config_file: Path | None = _CONFIG,
) -> None:
    """Revoke a key for good; servers refuse it within about a second."""
    with exit_on_error(), _store(config_file) as store:
        key = store.revoke(key_id, who=_who(actor))
    console.print(f"revoked key {key.id} of tenant {key.tenant}")


@keys_app.command("quota")
def quota(
    tenant: str = typer.Option(..., "--tenant", help="The tenant."),
    requests_per_day: int | None = typer.Option(
        None, "--requests-per-day", help="Requests per UTC day over its keys (omit: none)."
    ),
    max_models: int | None = typer.Option(
        None, "--max-models", help="Models it may register (omit: no limit)."
    ),
    max_audit_rows: int | None = typer.Option(
        None, "--max-audit-rows", help="Predictions the audit store may hold (omit: no limit)."
    ),
    actor: str | None = _ACTOR,
    config_file: Path | None = _CONFIG,
) -> None:
    """Set a tenant's quotas (each one omitted is cleared)."""
    with exit_on_error(), _store(config_file) as store:
        store.set_quota(
            tenant,
            requests_per_day,
            who=_who(actor),
            max_models=max_models,
            max_audit_rows=max_audit_rows,
        )
    daily = f"{requests_per_day} requests/day" if requests_per_day else "no daily quota"
    most = f"at most {max_models} models" if max_models else "no model limit"
    audit = f"at most {max_audit_rows} audit rows" if max_audit_rows else "no audit limit"
    console.print(f"tenant {tenant}: {daily}, {most}, {audit}")


@keys_app.command("events")
def events(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's."),
    config_file: Path | None = _CONFIG,
) -> None:
    """Who created and revoked which key and changed which quota, oldest first."""
    with exit_on_error(), _store(config_file) as store:
        rows = store.events(tenant)
    for row in rows:
        console.print(
            f"{row['at']:%Y-%m-%d %H:%M:%S} UTC  {row['action']} {row['tenant']} "
            f"{row['key_id'] or ''} by {row['who']} {json.dumps(row['detail'])}",
            highlight=False,
        )
