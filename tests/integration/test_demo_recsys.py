"""``driftloop demo --story recsys`` from a clean folder: MovieLens-100k trained, judged
on the future, registered, served by ``driftloop serve``'s app, audited and monitored; then
a retrained version rolled out by the loop (shadow, 50% canary with click feedback, then
promoted or rolled back) while the server follows."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import app as cli
from driftloop.loop import history
from driftloop.registry import Registry

for _module in ("torch", "hnswlib", "implicit"):
    pytest.importorskip(_module, reason="needs the recsys extra: pip install 'driftloop[recsys]'")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_recsys_story_trains_serves_audits_and_monitors(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--story", "recsys", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "movies:1: artifacts index, model, ranker; alias champion." in said
    for level in ("personalized", "cohort", "hybrid", "popular"):
        assert level in said  # every level answered someone
    assert "122 audited lists (version 1)" in said
    assert "n=0 is refused: 422 Field 'n'" in said
    registry = Registry.from_url(
        f"sqlite:///{folder}/.driftloop/registry.db", str(folder / ".driftloop" / "artifacts")
    )
    try:
        metrics = registry.get("movies", 1).metrics
        decisions = history(registry.engine, "movies")
        aliases = registry.aliases("movies")
        gate = registry.get("movies", 2).gate_report
    finally:
        registry.close()
    assert metrics["warm_ndcg@10"] > 0.15  # popularity's is 0.141 on this split
    # the rollout: retrained, gated offline, shadowed, canaried with click feedback, decided
    actions = [d.action for d in decisions]
    assert actions[:5] == ["request", "retrain", "trained", "shadow", "canary"], actions
    assert actions[-1] in ("promote", "rollback")
    assert gate["checks"][0]["name"] == "offline:ndcg@10"
    last = decisions[-1].numbers["comparison"]
    assert last["stage"] == "canary"
    assert last["task"] == "recommendation"
    assert "hit_rate" in last["tests"]  # the clicks counted in the decision
    assert last["champion"]["labelled"] > 0
    assert last["challenger"]["labelled"] > 0
    assert "scored" in said  # the shadow's copies
    assert "canary 50%: v1 answered" in said
    assert "v2 answered" in said
    champion = aliases["champion"]
    assert champion == (2 if actions[-1] == "promote" else 1)
    assert (
        f"After: champion is version {champion}; the server answers from version {champion}."
        in said
    )
