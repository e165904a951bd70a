"""Reading the dashboard's posted forms."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

__all__ = ["read_form"]

_MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """The posted form (``application/x-www-form-urlencoded``, what the pages' forms send:
    no multipart parser needed), each field's last value; empty when over 64 KiB."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:  # no page posts this much: read no further
            return {}
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
