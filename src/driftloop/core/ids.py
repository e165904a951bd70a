"""Prediction ids: unguessable, unique across processes, ordered by time.

An id is a UUIDv7 (RFC 9562) written as 32 lower-case hex digits: 48 bits of Unix time
in milliseconds, the version (7), a 12-bit sequence, the variant, then 62 bits from the
operating system's CSPRNG (``os.urandom``). Knowing one id (or a thousand) tells nothing
about the next one beyond its millisecond: guessing another caller's id means guessing
62 random bits. ``uuid.UUID(hex=...)`` reads an id back.

Within a process ids only grow (as text too, the digits being fixed-width): in one
millisecond the sequence counts up from a random start; when it runs out, the time
field moves on by a millisecond ahead of the clock (RFC 9562, method 3), and a clock
that steps back does not move the ids back. Random bits are drawn 8 KiB at a time and
the pool is dropped in a forked child, so two workers never share it.

>>> a, b = new_id(), new_id()
>>> len(a), a[12], a < b
(32, '7', True)
>>> import uuid; uuid.UUID(hex=a).version
7
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["id_time_ms", "new_id", "new_ids"]

_POOL_WORDS = 1024  # 8-byte words drawn from os.urandom at a time
_SEQ_MASK = 0xFFF
_RANDOM_MASK = (1 << 62) - 1
_VARIANT = 0b10 << 62
_VERSION = 0x7000


class _State:
    __slots__ = ("last_ms", "pool", "seq", "taken")

    def __init__(self) -> None:
        self.last_ms = -1
        self.seq = 0
        self.pool: memoryview = memoryview(b"").cast("Q")
        self.taken = 0


_state = _State()
_lock = threading.Lock()


def _reset() -> None:  # a forked worker must not reuse its parent's random bits
    global _state, _lock
    _state, _lock = _State(), threading.Lock()


os.register_at_fork(after_in_child=_reset)


def _word(state: _State) -> int:
    """Eight random bytes as an int (the caller holds the lock)."""
    if state.taken >= len(state.pool):
        state.pool = memoryview(os.urandom(8 * _POOL_WORDS)).cast("Q")
        state.taken = 0
    word: int = state.pool[state.taken]
    state.taken += 1
    return word


def _next(state: _State, now_ms: int) -> str:
    if now_ms > state.last_ms:
        state.last_ms = now_ms
        state.seq = _word(state) & 0x3FF  # a random start, leaving room to count up
    else:
        state.seq += 1
        if state.seq > _SEQ_MASK:  # 4096 ids in one millisecond: borrow the next one
            state.last_ms += 1
            state.seq = 0
    high = (state.last_ms << 16) | _VERSION | state.seq
    return f"{high:016x}{_VARIANT | (_word(state) & _RANDOM_MASK):016x}"


def new_id() -> str:
    """A new prediction id (32 hex digits, a UUIDv7): about 1 us."""
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        return _next(_state, now_ms)


def new_ids(n: int) -> list[str]:
    """``n`` new ids, in order (one clock read and one lock for the lot)."""
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        state = _state
        return [_next(state, now_ms) for _ in range(n)]


def id_time_ms(prediction_id: str) -> int:
    """The Unix time in milliseconds an id was made at (its first 12 hex digits).

    >>> id_time_ms("0190f0d2a4c87abc8123456789abcdef")
    1722027254984
    """
    return int(prediction_id[:12], 16)
