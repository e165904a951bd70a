from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.data import simulate_transactions


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 days of simulated transactions, shared (read-only) by the training tests."""
    folder = tmp_path_factory.mktemp("data")
    simulate_transactions(customers=300, terminals=600, days=40, seed=7).write(folder)
    return folder
