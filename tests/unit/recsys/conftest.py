from __future__ import annotations

import pytest

# The recommender needs the recsys extra (PyTorch, implicit, hnswlib); CI installs it.
for _module in ("torch", "hnswlib", "implicit"):
    pytest.importorskip(_module, reason="needs the recsys extra: pip install 'driftloop[recsys]'")
