"""Prediction ids cannot be guessed from others, never repeat, and sort by time."""

from __future__ import annotations

import itertools
import os
import uuid
import warnings
from collections import Counter

import pytest

from driftloop.core import ids
from driftloop.core.ids import id_time_ms, new_id, new_ids


@pytest.fixture(autouse=True)
def _own_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from a fresh generator (the frozen clocks below must not leave
    the process's ids stamped in the future)."""
    monkeypatch.setattr(ids, "_state", ids._State())


def test_ids_are_uuid7_in_32_hex_digits_with_the_time_they_were_made() -> None:
    before = ids.time.time_ns() // 1_000_000
    made = new_id()
    after = ids.time.time_ns() // 1_000_000
    parsed = uuid.UUID(hex=made)
    assert len(made) == 32
    assert made == made.lower()
    assert parsed.hex == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= id_time_ms(made) <= after + 1


def test_ids_of_a_process_are_unique_and_grow_even_past_4096_in_one_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_000_000_000)  # frozen
    made = [new_id() for _ in range(10_000)] + new_ids(5_000)
    assert len(set(made)) == len(made)
    assert made == sorted(made)  # as text too: fixed width, lower-case hex


def test_a_clock_stepping_back_does_not_move_ids_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000_000_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now[0])
    first = new_id()
    now[0] -= 5_000_000_000  # NTP steps the clock 5 s back
    assert new_id() > first


def test_the_random_part_is_not_predictable_from_neighbouring_ids() -> None:
    """62 bits per id come from the CSPRNG: neighbours share no random bits, and every
    bit position takes both values about half the time."""
    made = new_ids(4_000)
    tails = [int(m[16:], 16) & ((1 << 62) - 1) for m in made]
    assert len(set(tails)) == len(tails)
    differences = {b - a for a, b in itertools.pairwise(tails)}
    assert len(differences) == len(tails) - 1  # no counter hides in them
    ones = Counter(bit for t in tails for bit in range(62) if t >> bit & 1)
    assert all(1_700 < ones[bit] < 2_300 for bit in range(62))  # ~2000 each; 10 sigma wide


def test_a_forked_worker_draws_its_own_random_bits() -> None:
    new_id()  # the parent's pool is filled
    read, write = os.pipe()
    with warnings.catch_warnings():  # forking while other tests' threads live: the child
        warnings.simplefilter("ignore", DeprecationWarning)  # touches none of their locks
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(new_ids(8)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 8 * 32).decode()
    os.waitpid(pid, 0)
    os.close(read)
    parent = "".join(new_ids(8))
    child_tails = {child[i + 16 : i + 32] for i in range(0, len(child), 32)}
    parent_tails = {parent[i + 16 : i + 32] for i in range(0, len(parent), 32)}
    assert len(child_tails) == 8
    assert not child_tails & parent_tails
