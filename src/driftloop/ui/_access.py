"""Who looks at the dashboard, and what they may see and do.

Without API keys (``serving.auth`` other than ``"keys"``) everyone sees every model and
an admin action needs the admin token typed into its form (a value a forged cross-site
form cannot hold). With API keys, the dashboard is behind a login: ``/ui/login`` takes a
key (scope ``read`` or ``admin``), checks it against the key store as the server does
(:meth:`driftloop.registry.KeyStore.verify`: revoked and expired keys fail) and keeps it
in a cookie that scripts cannot read (``HttpOnly``), that no other site's page sends
(``SameSite=Strict``), scoped to the dashboard's path and ``Secure`` over HTTPS. The key
is checked again on every request, so a revoked key is out at once. The key sees only its
tenant's models, their drift, traffic, loop and predictions (another tenant's model is
"not found", as the API answers), and its tenant's feature views only. Admin actions need
the ``admin`` scope and carry a CSRF token: an HMAC of the key's secret that a page of
another origin cannot compute, checked in constant time; a POST whose ``Origin`` names
another host (a form of another site, the login form's included) is refused before
anything else.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from driftloop.core.errors import NotFoundError
from driftloop.registry import KeyStore
from driftloop.ui._forms import read_form
from driftloop.ui._render import message, render

__all__ = [
    "COOKIE",
    "EVERYONE",
    "KeyDoor",
    "Viewer",
    "check_model",
    "csrf_of",
    "login",
    "login_form",
    "logout",
    "models_of",
    "viewer",
]

COOKIE = "driftloop_ui_key"
_OPEN = ("/login",)  # what a request without a key may reach


@dataclass(frozen=True)
class Viewer:
    """Who asks: an API key's id, tenant and scopes, or everyone (no keys: tenant None)."""

    tenant: str | None = None
    key_id: str | None = None
    scopes: tuple[str, ...] = ()
    csrf: str = ""

    @property
    def admin(self) -> bool:
        """May act (with API keys: the ``admin`` scope; else the admin token decides)."""
        return self.key_id is None or "admin" in self.scopes


EVERYONE = Viewer()


def csrf_of(secret: str) -> str:
    """The CSRF token of the forms shown to the holder of ``secret`` (stateless: every
    worker computes the same, and nothing but the key's holder can)."""
    return hmac.new(secret.encode(), b"driftloop-ui-csrf", hashlib.sha256).hexdigest()


def viewer(request: Request) -> Viewer:
    found: Viewer = request.scope.get("state", {}).get("viewer", EVERYONE)
    return found


def models_of(request: Request, reader: Any) -> list[dict[str, Any]]:
    """The registry's models the viewer may see."""
    models: list[dict[str, Any]] = reader.registry.list_models(tenant=viewer(request).tenant)
    return models


def check_model(request: Request, reader: Any, name: str) -> None:
    """Not found unless the viewer may see model ``name`` (another tenant's model is
    answered as one that does not exist)."""
    tenant = viewer(request).tenant
    if tenant is not None and name not in {str(m["name"]) for m in models_of(request, reader)}:
        raise NotFoundError(f"No model named '{name}' in the registry.")


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed header is no key
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def _same_origin(scope: Scope) -> bool:
    """No ``Origin`` header (not a browser's cross-site POST), or one naming this host
    (``Host``, or ``X-Forwarded-Host`` as a proxy passes it on): refuses a form posted
    from another site, the login form included."""
    headers: dict[bytes, bytes] = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True
    hosts = {headers.get(b"host"), headers.get(b"x-forwarded-host")} - {None}
    return origin.split(b"://", 1)[-1] in hosts


class KeyDoor:
    """ASGI middleware of the dashboard under API keys: the cookie's key, checked on every
    request, becomes ``request.state.viewer``; without a usable key a page leads to the
    login form and a POST is refused (401)."""

    def __init__(self, app: ASGIApp, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and not _same_origin(scope):
            text = "A form of another site may not post here."
            await message(Request(scope), "Refused", text, 403)(scope, receive, send)
            return
        secret = _cookie(scope)
        key = await run_in_threadpool(self.keys.verify, secret) if secret else None
        if key is not None and {"read", "admin"} & set(key.scopes):
            assert secret is not None
            state = scope.setdefault("state", {})
            state["viewer"] = Viewer(key.tenant, key.id, key.scopes, csrf_of(secret))
        else:
            root = scope.get("root_path", "")
            path = scope["path"].removeprefix(root) if scope["path"] != root else "/"
            if path not in _OPEN:
                request = Request(scope)
                if scope["method"] in ("GET", "HEAD"):
                    target = f"{root}/login?next={quote(path)}"
                    response: Response = RedirectResponse(target, 303)
                else:
                    response = message(
                        request, "Log in first", "This needs an API key: log in again.", 401
                    )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def login_form(request: Request) -> Response:
    context = {"next": _next(request.query_params.get("next", "/")), "error": None}
    return render(request, "login.html", context)


def _next(path: str) -> str:
    """Only a path inside the dashboard (never another site)."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


async def login(request: Request) -> Response:
    form = await read_form(request)
    secret = str(form.get("key", "")).strip()
    keys: KeyStore = request.app.state.keys
    key = await run_in_threadpool(keys.verify, secret) if secret else None
    nxt = _next(str(form.get("next", "/")))
    if key is None or not {"read", "admin"} & set(key.scopes):
        error = (
            "That key is not valid (unknown, revoked or expired)."
            if key is None
            else f"API key '{key.id}' has neither the read nor the admin scope."
        )
        return render(request, "login.html", {"next": nxt, "error": error}, 401)
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}{nxt}", 303)
    response.set_cookie(
        COOKIE,
        secret,
        path=f"{root}/" if root else "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    form = await read_form(request)
    if not hmac.compare_digest(str(form.get("csrf", "")), viewer(request).csrf):
        return message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}/login", 303)
    response.delete_cookie(COOKIE, path=f"{root}/" if root else "/")
    return response
