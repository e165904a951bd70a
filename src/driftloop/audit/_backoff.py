"""Exponential backoff with jitter, for retrying a store that did not answer."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``; each one is drawn uniformly
    from its upper half, so that processes that failed together do not retry together.

    >>> delays = Backoff(0.2, 1.0, rng=random.Random(7))
    >>> [c / 2 <= delays.next() <= c for c in (0.2, 0.4, 0.8, 1.0, 1.0)]
    [True, True, True, True, True]
    >>> delays.reset()
    >>> delays.ceiling
    0.2
    """

    def __init__(self, initial: float, maximum: float, *, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.ceiling = initial  # the upper bound of the next delay
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The next delay in seconds (then the ceiling doubles, up to ``maximum``)."""
        ceiling = self.ceiling
        self.ceiling = min(2 * ceiling, self.maximum)
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self.ceiling = self.initial
