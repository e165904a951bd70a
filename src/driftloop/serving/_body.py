"""A request body as JSON: refused with a 400 naming where it breaks, or when it nests
deeper than :data:`MAX_DEPTH` (checked before parsing, vectorised)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson

from driftloop.serving._errors import HttpError

__all__ = ["MAX_DEPTH", "parse_body"]

MAX_DEPTH = 32
"""The deepest a request body may nest arrays and objects (driftloop's own bodies nest 5)."""
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_QUOTE, _OPEN, _CLOSE = ord('"'), ord("{"), ord("}")


def parse_body(raw: bytes) -> Any:
    """The JSON body; 400 when it is not JSON (where, not the parser's words) or nests
    deeper than :data:`MAX_DEPTH` (checked before parsing: nothing deeper reaches a
    handler, an error echoing it or the JSON writer).

    >>> parse_body(b'{"instances": [{"a": "[[[["}]}')
    {'instances': [{'a': '[[[['}]}
    >>> try:
    ...     parse_body(b"[" * 40 + b"]" * 40)
    ... except HttpError as exc:
    ...     exc.message
    'The body nests arrays and objects 40 deep; the limit is 32.'
    """
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        depth = _depth(raw)
        if depth > MAX_DEPTH:
            raise HttpError(
                "body-invalid",
                f"The body nests arrays and objects {depth} deep; the limit is {MAX_DEPTH}.",
            )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(
            "body-invalid",
            f"The body is not valid JSON (line {exc.lineno}, column {exc.colno}).",
        ) from None


def _depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` outside strings, vectorised (a body may hold a
    megabyte): a bracket is outside strings when an even number of quotes precede it."""
    if b"\\" in raw:  # escaped quotes: take the strings out first (rare in requests)
        raw = _STRING.sub(b'""', raw)
    codes = np.frombuffer(raw, dtype=np.uint8)
    folded = codes | 0x20  # [ and { become {, ] and } become }
    opens, closes = folded == _OPEN, folded == _CLOSE
    where = np.flatnonzero(opens | closes)
    outside = np.searchsorted(np.flatnonzero(codes == _QUOTE), where) % 2 == 0
    steps = opens[where].astype(np.int32) - closes[where]
    return int(np.cumsum(steps[outside]).max(initial=0))
