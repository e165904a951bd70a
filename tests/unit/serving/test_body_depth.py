"""The nesting limit is checked on the raw body (before parsing): it must measure what
the parser would build, whatever the strings hold."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from driftloop.serving._body import _depth

TRICKY = st.text(alphabet='[]{}"\\ab\x00é', max_size=8)  # brackets, quotes, escapes in strings
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_the_raw_depth_is_the_parsed_depth(value: Any) -> None:
    assert _depth(orjson.dumps(value)) == depth(value)
