from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from driftloop.registry import Registry, Signature
from driftloop.serving import RegistryModelSource, ServedModel, create_app
from serving_helpers import FEATURES, row


def test_registry_models_are_served_by_alias_and_follow_promotions(
    tmp_path: Path, boosters: dict[str, Any]
) -> None:
    registry = Registry.from_url(f"sqlite:///{tmp_path / 'reg.db'}", str(tmp_path / "art"))
    signature = Signature.from_frame(pd.DataFrame(columns=FEATURES, dtype="float64"))
    registry.register("fraud", boosters["1"], signature=signature, alias="champion")
    v2 = registry.register("fraud", boosters["2"], signature=signature)
    app = create_app([ServedModel("fraud")], RegistryModelSource(registry), refresh_s=0)
    x = np.array([[row(3)[f] for f in FEATURES]])
    with TestClient(app) as client:
        first = client.post("/v1/models/fraud/predict", json={"instances": [row(3)]}).json()
        assert first["version"] == "1"
        meta = client.get("/v2/models/fraud").json()
        assert meta["parameters"]["runtime"] in ("onnxruntime", "lightgbm")
        registry.set_alias("fraud", "champion", v2.version, who="test", why="promote")
        client.portal.call(app.state.server.refresh_all)
        second = client.post("/v1/models/fraud/predict", json={"instances": [row(3)]}).json()
    assert second["version"] == str(v2.version)
    assert second["predictions"][0]["score"] == pytest.approx(boosters["2"].predict(x)[0], abs=1e-6)
    registry.close()
