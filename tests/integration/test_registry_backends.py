"""The registry on real databases: PostgreSQL (and SQLite for the same promises)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.registry import Registry, Signature
from registry_helpers import postgres_schema, toy_lightgbm

pytestmark = pytest.mark.integration

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from registry_helpers import toy_lightgbm
    from driftloop.registry import Registry, Signature
    url, arts, go, who = sys.argv[1:5]
    registry = Registry.from_url(url, arts)
    model, X = toy_lightgbm()
    while not Path(go).exists():
        time.sleep(0.01)
    for i in range(5):
        mv = registry.register("fraud", model, signature=Signature.from_frame(X),
                               tags={{"writer": who, "i": str(i)}})
        print(mv.version, flush=True)
    """
)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/registry.db"
        return
    url = request.getfixturevalue("postgres_url")
    with postgres_schema(url) as schema_url:
        yield schema_url


def test_two_processes_registering_at_once_get_distinct_versions(
    registry_url: str, tmp_path: Path
) -> None:
    arts = str(tmp_path / "artifacts")
    Registry.from_url(registry_url, arts).close()  # migrate once, as `driftloop init` would
    go = tmp_path / "go"
    script = WRITER.format(tests=str(Path(__file__).parents[1]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, registry_url, arts, str(go), who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for who in ("a", "b")
    ]
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    seen = sorted(int(v) for out, _ in outputs for v in out.split())
    assert seen == list(range(1, 11))
    registry = Registry.from_url(registry_url, arts)
    versions = registry.versions("fraud")
    assert [v.version for v in versions] == list(range(1, 11))
    assert sorted((v.tags["writer"], v.tags["i"]) for v in versions) == sorted(
        (w, str(i)) for w in "ab" for i in range(5)
    )
    registry.close()


def test_alias_history_and_rollback_on_each_database(registry_url: str, tmp_path: Path) -> None:
    registry = Registry.from_url(registry_url, str(tmp_path / "artifacts"))
    model, X = toy_lightgbm()
    for v in (1, 2):
        registry.register("fraud", model, signature=Signature.from_frame(X))
        registry.set_alias("fraud", "champion", v, who="ci", why=f"v{v}")
    moved = registry.history("fraud", "champion")[-1]
    assert registry.alias_at("fraud", "champion", moved.at).version == 2
    assert registry.rollback("fraud", who="oncall").version == 1
    assert registry.resolve("fraud", "champion").version == 1
    assert registry.load("fraud", 2).predict_batch(X).shape == (len(X),)
    registry.close()
