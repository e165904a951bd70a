"""Rendering pages: the package's Jinja2 templates (autoescaped), with the links of every
page made relative to where the dashboard is mounted (``/ui`` by ``driftloop serve``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

__all__ = ["ENVIRONMENT", "message", "render"]


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value.tzinfo else f"{value:%Y-%m-%d %H:%M:%S}"
    return "-" if value is None else str(value)


ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("driftloop.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.filters["num"] = _number
ENVIRONMENT.filters["when"] = _when


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """``template`` filled with ``context``, the mount point as ``base``, the page's
    name as ``page`` (for the menu) and who looks as ``viewer`` (None without keys)."""
    base = request.scope.get("root_path", "").rstrip("/")
    who = request.scope.get("state", {}).get("viewer")  # set under API keys (._access)
    page = ENVIRONMENT.get_template(template).render(
        {"viewer": who, **context, "base": base, "page": template.removesuffix(".html")}
    )
    return HTMLResponse(page, status_code=status_code)


def message(request: Request, title: str, text: str, status_code: int) -> Response:
    """A page that only says something: a refusal, a missing thing, a bad request."""
    return render(request, "message.html", {"title": title, "text": text}, status_code)
