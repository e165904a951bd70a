"""What the server logs about failures it answers with a 5xx, bounded so that a client
repeating a failing request cannot fill the disk.

The first failure of a kind (exception type and the line that raised it) is logged with
its traceback, cut to ``max_chars``; the same kind again is one line per ``every_s``
seconds, with how many were not logged since; at most ``max_kinds`` kinds are remembered.

>>> import logging
>>> now = [0.0]
>>> errors = ErrorLog(logging.getLogger("doctest"), clock=lambda: now[0])
>>> def fail():
...     raise ValueError("x" * 10_000)
>>> for _ in range(1_000):
...     try:
...         fail()
...     except ValueError as exc:
...         errors.report("predict", exc)
>>> errors.logged, errors.suppressed
(1, 999)
>>> now[0] = 61.0
>>> try:
...     fail()
... except ValueError as exc:
...     errors.report("predict", exc)
>>> errors.logged, errors.suppressed
(2, 0)
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

__all__ = ["ErrorLog", "shorten"]


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class ErrorLog:
    """Logs unexpected failures: a kind's first with its traceback, then one line per
    ``every_s`` seconds with the count of the others."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every_s: float = 60.0,
        max_chars: int = 8_000,
        max_kinds: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every_s = every_s
        self.max_chars = max_chars
        self.max_kinds = max_kinds
        self.clock = clock
        self._kinds: dict[tuple[str, str], list[float]] = {}  # kind -> [logged at, skipped]
        self.logged = 0
        self.suppressed = 0  # since the last line logged

    def report(self, where: str, exc: BaseException) -> None:
        """Log ``exc``, raised while answering ``where``, unless its kind was just logged."""
        frames = traceback.extract_tb(exc.__traceback__)
        line = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else where
        kind = (type(exc).__name__, line)
        now = self.clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += 1
            self.suppressed += 1
            return
        self.logged += 1
        self.suppressed = 0
        message = shorten(str(exc), 300)
        if seen is not None:
            self.logger.error(
                "%s: %s at %s: %s (%d more since the last report)",
                where, kind[0], line, message, int(seen[1]),
            )  # fmt: skip
            seen[0], seen[1] = now, 0
            return
        if len(self._kinds) >= self.max_kinds:
            self._kinds.pop(next(iter(self._kinds)))
        self._kinds[kind] = [now, 0]
        text = "".join(traceback.format_exception(exc))
        self.logger.error(
            "%s failed (the same failure is logged once per %g s from now):\n%s",
            where, self.every_s, shorten(text, self.max_chars),
        )  # fmt: skip

    def note(self, where: str, detail: str) -> None:
        """Log a failure without a traceback (a backend's message kept from the client),
        as a kind of its own per ``where``."""
        try:
            raise RuntimeError(shorten(detail, 1_000))
        except RuntimeError as exc:
            exc.__traceback__ = None
            self.report(where, exc)
