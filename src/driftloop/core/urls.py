"""Backend URLs: checking their scheme and turning embedded ones into local paths.

Embedded backends follow SQLAlchemy's convention: ``sqlite:///relative/file.db`` is
relative to the project folder, ``sqlite:////absolute/file.db`` is absolute.

>>> local_path("sqlite:///.driftloop/online.db", Path("/srv/fraud"))
PosixPath('/srv/fraud/.driftloop/online.db')
>>> local_path("sqlite:////var/lib/online.db", Path("/srv/fraud"))
PosixPath('/var/lib/online.db')
>>> scheme_of("postgresql+psycopg://localhost/test")
'postgresql+psycopg'
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["check_url", "local_path", "scheme_of"]


def scheme_of(url: str) -> str:
    """The part before ``://``, lower-cased; empty for a plain path."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


def check_url(url: str, allowed: Iterable[str], *, plain_path: bool = False) -> str:
    """Return ``url`` if its scheme is one of ``allowed`` (or it is a plain path when
    ``plain_path``); raise ``ValueError`` naming the expected forms otherwise."""
    allowed = tuple(allowed)
    scheme = scheme_of(url)
    if (scheme == "" and plain_path and url) or scheme in allowed:
        return url
    forms = " or ".join(f"'{s}://...'" for s in allowed)
    if plain_path:
        forms += " or a folder path"
    got = f"scheme '{scheme}'" if scheme else "no scheme"
    raise ValueError(f"a URL of the form {forms} ({got} is not supported)")


def local_path(url: str, root: Path) -> Path:
    """The file or folder an embedded backend URL (or plain path) points to."""
    scheme = scheme_of(url)
    rest = url.partition("://")[2] if scheme else url
    if scheme == "file":
        rest = rest.removeprefix("localhost")
    elif scheme:
        rest = rest.removeprefix("/")
    path = Path(rest)
    return path if path.is_absolute() else root / path
