"""Schemathesis over the published OpenAPI of a real ``driftloop serve`` (a typed model
from the registry: numbers, a boolean, categories, a timestamp input, an id): no 5xx,
every answer as documented (status, content type, body schema), every request the
document forbids refused, and every request it allows to a model's typed predict path
and to feedback accepted. Thousands of cases, bounded by ``max_examples``, seeded."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.core.config import load_settings
from driftloop.registry import Registry
from driftloop.training import TrainingPipeline
from live_server import LiveServer, live_server
from tabular_world import model_toml, table

pytestmark = pytest.mark.reliability

MAX_EXAMPLES = 200  # per operation and phase
# The v2 tensors' shape and data must agree, which JSON Schema cannot say: there, only
# schema-valid answers and refusals of schema-invalid requests are checked.
CONFIG = """
[[operations]]
include-path = "/v2/models/{name}/infer"
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture(scope="module")
def typed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("fuzzed")
    (root / "data").mkdir()
    table("binary", rows=1_000, seed=3).to_csv(root / "data" / "applications.csv", index=False)
    toml = model_toml("binary", name="loans") + 'timestamps = {applied_at = ["hour"]}\n'
    (root / "driftloop.toml").write_text(toml)
    settings = load_settings(root / "driftloop.toml", environ={})
    TrainingPipeline.from_settings(settings, "loans", params={"n_estimators": 10}).run()
    registry = Registry.from_settings(settings)
    registry.set_alias("loans", "champion", 1, who="test")
    registry.close()
    with live_server(root, ["-m", "loans"]) as server:
        yield server


def test_fuzzing_the_published_openapi_finds_no_5xx_and_no_disagreement(
    typed_server: LiveServer, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(config),
        "run", f"{typed_server.base}/openapi.json",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "14",
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    done = subprocess.run(  # in tmp_path: schemathesis keeps a cache folder where it runs
        command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6_000:]
    generated = re.search(r"(\d+) generated", report)
    assert generated is not None, report[-2_000:]
    assert int(generated.group(1)) >= 2_000, report[-2_000:]
