"""Who may send feedback, and what the answer tells them.

With ``serving.auth = "keys"``, feedback needs an API key with scope ``feedback`` and
labels only its tenant's predictions (see below). Otherwise:
with ``serving.feedback_token_sha256`` (or ``DRIFTLOOP_FEEDBACK_TOKEN``) set, feedback
needs ``Authorization: Bearer <token>`` with the feedback token or the admin token (401
without one, 403 with another); with ``serving.auth = "token"`` it always needs one.
Without it feedback is open, as fits a laptop; a caller
that still shows a valid admin token counts as holding a credential.

Only a caller holding a credential is told *which* prediction ids are unknown
(``unknown``); every caller gets how many (``unknown_count``), so a batch of guessed ids
sent to an open server does not say which of them exist. (One guess per request still
does, as does a 409: on an open server, what protects a prediction is that its id cannot
be guessed, 62 random bits; a server others can reach should set the token.)

A label that differs from the one a prediction has is refused (409, naming the id)
unless the request says ``"relabel": true``; every relabel is kept in the audit store
with the old and new label, the actor (``X-Driftloop-Actor``, else ``feedback``,
``admin`` or ``anonymous`` by the credential shown) and the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from driftloop.audit import LabelOutcome
from driftloop.serving._auth import actor_of, bearer_token, check_bearer
from driftloop.serving._errors import HttpError
from driftloop.serving._server import Server

__all__ = ["Caller", "feedback_answer", "feedback_caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends feedback: the actor name relabels are recorded under, whether a valid
    token was shown (only then are unknown ids named) and, with API keys, the key's
    tenant (whose predictions alone it may label)."""

    actor: str
    credentialed: bool
    tenant: str | None = None


def feedback_caller(request: Request, server: Server) -> Caller:
    """The caller of a feedback request; 401/403 when a feedback token is configured and
    the request does not show it (or the admin token). With API keys the key, checked
    at the door, is the credential: unknown ids are then counted, never named, so that
    another tenant's ids cannot be told from ids that do not exist."""
    key = getattr(request.state, "key", None)
    if server.gate is not None:
        if key is None:  # the door let no key through: not a keyed route
            raise HttpError("unauthorized", "Feedback needs 'Authorization: Bearer <key>'.")
        return Caller(f"key:{key.id}", False, key.tenant)
    feedback, admin = server.feedback_digest, server.admin_digest
    digests = [d for d in (feedback, admin) if d is not None]
    if server.settings.auth == "token" and not digests:
        raise HttpError("forbidden", "Feedback is off: serving.auth = 'token' and no token is set.")
    closed = feedback is not None or server.settings.auth == "token"
    if not closed and (admin is None or bearer_token(request) is None):
        return Caller(actor_of(request, "anonymous"), False)  # open feedback
    # a token is due, or shown on open feedback: it must be valid (the admin one counts)
    which = check_bearer(request, digests, "Feedback")
    return Caller(actor_of(request, "feedback" if digests[which] == feedback else "admin"), True)


def feedback_answer(
    caller: Caller, outcome: LabelOutcome, unknown: Sequence[str], pids: Sequence[str]
) -> dict[str, Any]:
    """The answer to a feedback request (409 when labels conflicted: nothing was stored).
    ``unknown`` are the ids found unknown before storing, ``pids`` the request's ids in
    order (to name each conflicting label's position)."""
    if outcome.conflicts:
        where = {pid: i for i, pid in reversed(list(enumerate(pids)))}
        first = outcome.conflicts[0]
        raise HttpError(
            "conflict",
            f"label {where[first]}: prediction '{first}' already has a different label "
            f"({len(outcome.conflicts)} such label(s); none of the request was stored). "
            'Send "relabel": true to replace them; every relabel is audited.',
            [
                {
                    "instance": where[pid],
                    "field": "label",
                    "rule": "differs from the prediction's label; relabel is not set",
                    "prediction_id": pid,
                }
                for pid in outcome.conflicts
            ],
        )
    missing = [*unknown, *outcome.unknown]
    answer: dict[str, Any] = {"accepted": outcome.accepted, "unknown_count": len(missing)}
    if caller.credentialed:
        answer["unknown"] = missing
    if outcome.relabelled:
        answer["relabelled"] = len(outcome.relabelled)
    return answer
