"""Bearer tokens, shared by the admin API and feedback.

The server holds only a token's SHA-256 (``serving.*_token_sha256``, or the token itself
in an environment variable, hashed at start) and compares digests in constant time, so
neither a stored setting nor the time a comparison takes gives the token away.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from starlette.requests import Request

from driftloop.serving._errors import HttpError

__all__ = [
    "actor_name",
    "actor_of",
    "bearer_token",
    "check_bearer",
    "token_digest",
    "token_matches",
]

_ACTOR = re.compile(r"^[\w.@+\- ]{1,100}$")


def token_digest(token: str) -> str:
    """The SHA-256 (hex) of a token, as ``serving.admin_token_sha256`` (and
    ``serving.feedback_token_sha256``) holds it.

    >>> token_digest("s3cret")[:16]
    '1ec1c26b50d5d3c5'
    """
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def check_bearer(request: Request, digests: Sequence[str], what: str) -> int:
    """Which of ``digests`` the request's bearer token matches (its index); 401 without a
    token, 403 with one that matches none. Every digest is compared, each in constant
    time, so the answer's timing does not say which one came close."""
    token = bearer_token(request)
    if token is None:
        raise HttpError("unauthorized", f"{what} needs 'Authorization: Bearer <token>'.")
    given = token_digest(token)
    matched = [hmac.compare_digest(given, digest) for digest in digests]
    if not any(matched):
        raise HttpError("forbidden", f"The token is not valid for {what[0].lower()}{what[1:]}.")
    return matched.index(True)


def token_matches(token: str, digest: str | None) -> bool:
    """Whether ``token`` is the one whose SHA-256 is ``digest``, compared in constant time
    (always False without a digest: what it guards is off). For a token that does not come
    in a header, such as the dashboard's admin forms.

    >>> token_matches("s3cret", token_digest("s3cret")), token_matches("guess", None)
    (True, False)
    """
    token = token.strip()
    return digest is not None and bool(token) and hmac.compare_digest(token_digest(token), digest)


def actor_name(given: str | None, default: str = "admin") -> str:
    """Who makes a change, as recorded: ``given`` when it is a plain name (letters, digits,
    ``.@+-_`` and spaces, up to 100), else ``default``."""
    actor = (given or "").strip()
    return actor if _ACTOR.match(actor) else default


def actor_of(request: Request, default: str) -> str:
    """Who the caller says it is (``X-Driftloop-Actor``), else ``default``."""
    return actor_name(request.headers.get("x-driftloop-actor"), default)
