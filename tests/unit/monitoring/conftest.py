from __future__ import annotations

import pytest

from simulated_world import World, make_world


@pytest.fixture
def inflation_world() -> World:
    return make_world("inflation")


@pytest.fixture
def concept_world() -> World:
    return make_world("concept")
