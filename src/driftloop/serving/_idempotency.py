"""``Idempotency-Key``: a retried predict, infer or feedback request is answered once.

The first request with a key claims it in the audit store (so every worker and a
restarted server see it), runs, and stores its answer; a retry with the same key and the
same body gets that answer again (same prediction ids, ``Idempotent-Replayed: true``)
and writes nothing. The same key with another body is a 422; a retry while the first
is still running, a 409. A request that fails (any answer but 2xx) releases its key, so
its retry runs again. Keys are per endpoint path and live ``serving.idempotency_ttl_s``
(24 h by default); with API keys, per tenant too, so one tenant's key never replays or
blocks another's. A server that died mid-request leaves its claim, which the next retry
takes over after ``LEASE_S``.

Without an audit log nothing is written, so a retry duplicates nothing: the header is
then ignored (as with an audit log of another kind, which has no table for keys). While
the audit store does not answer, a keyed request is a 503 (its key cannot be checked),
where one without a key is still answered and its rows spooled.
Feedback checks the caller's credential before looking at the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Scope

from driftloop.serving._errors import HttpError
from driftloop.serving._server import Handler, Server, read_body

__all__ = ["HEADER", "LEASE_S", "idempotent", "keyed"]

log = logging.getLogger(__name__)

HEADER = "idempotency-key"
LEASE_S = 60.0  # a claim in progress longer than this is taken to be abandoned
_RAW_HEADER = HEADER.encode()
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def keyed(scope: Scope) -> bool:
    """Whether an ASGI request carries an ``Idempotency-Key`` (the fast path leaves those
    to the checked route)."""
    return any(name == _RAW_HEADER for name, _ in scope["headers"])


def idempotent(handler: Handler, guard: Callable[[Request, Server], Any] | None = None) -> Handler:
    """``handler`` answering each ``Idempotency-Key`` once; ``guard`` (a credential
    check) runs before a stored answer is looked up."""

    async def run(request: Request, server: Server) -> Response:
        key = request.headers.get(HEADER)
        keys = server.keys
        if key is None or keys is None:
            return await handler(request, server)
        if guard is not None:
            guard(request, server)
        if not _KEY.match(key):
            raise HttpError(
                "invalid-parameter",
                "header 'Idempotency-Key' must be 1 to 255 visible ASCII characters.",
                [{"field": "Idempotency-Key", "rule": "1 to 255 visible ASCII characters"}],
            )
        raw = await read_body(request, server.settings.max_body_bytes)
        api_key = getattr(request.state, "key", None)  # keys are per tenant with API keys
        scope = request.url.path if api_key is None else f"{request.url.path}@{api_key.tenant}"
        try:
            claim = await asyncio.to_thread(
                keys.claim,
                scope,
                key,
                hashlib.sha256(raw).hexdigest(),
                now=server.clock(),
                ttl_s=server.settings.idempotency_ttl_s,
                lease_s=LEASE_S,
            )
        except Exception as exc:  # the store is down or locked: the key cannot be checked
            log.warning("Idempotency-Key %r not checked: %s", key, exc)
            raise HttpError(
                "unavailable",
                "The audit store, which keeps idempotency keys, did not answer; retry later "
                "(or send the request without Idempotency-Key).",
            ) from None
        if claim.state == "replay":
            return Response(
                claim.body,
                claim.status,
                headers={"idempotent-replayed": "true"},
                media_type="application/json",
            )
        if claim.state == "mismatch":
            raise HttpError(
                "idempotency-key-reused",
                "header 'Idempotency-Key' was used before with a different body; send a "
                "new key for a new request.",
                [{"field": "Idempotency-Key", "rule": "was used with a different body"}],
                status=422,
            )
        if claim.state == "busy":
            raise HttpError(
                "conflict",
                "A request with this Idempotency-Key is still being answered; retry later.",
                [{"field": "Idempotency-Key", "rule": "its first request is in progress"}],
            )
        try:
            response = await handler(Request(request.scope, _replaying(raw)), server)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(keys.release, scope, key))
            raise
        try:
            if 200 <= response.status_code < 300:
                body = bytes(response.body).decode()
                await asyncio.to_thread(keys.complete, scope, key, response.status_code, body)
            else:
                await asyncio.to_thread(keys.release, scope, key)
        except Exception as exc:  # answered all the same: the caller has its answer
            log.warning("Idempotency-Key %r not recorded: %s", key, exc)
        return response

    return run


def _replaying(raw: bytes) -> Callable[[], Any]:
    """An ASGI ``receive`` that hands the handler the body already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return receive
