"""The loop controller: monitoring signals turned into retrain -> gate -> shadow ->
canary -> promote or roll back, every decision recorded, one leader per model
(docs/loop.md)."""

from __future__ import annotations

from driftloop.loop._analysis import VERDICTS, Analysis, Verdict
from driftloop.loop._arm_analysis import ArmAnalysis, limits_of
from driftloop.loop._audit_analysis import AuditArmAnalysis, arm_share
from driftloop.loop._controller import LoopController, request_retrain
from driftloop.loop._decisions import STATES, Decision, RolloutState, history, rollout_state
from driftloop.loop._lease import Lease, LeaseLostError
from driftloop.loop._recsys_retrain import FlavorRetrainer, RecommenderRetrainer
from driftloop.loop._retrain import PipelineRetrainer, Retrainer, Trained, beats_champion
from driftloop.loop._rollout import GateWindow, Rollout
from driftloop.loop._triggers import Trigger, due_trigger

__all__ = [
    "STATES",
    "VERDICTS",
    "Analysis",
    "ArmAnalysis",
    "AuditArmAnalysis",
    "Decision",
    "FlavorRetrainer",
    "GateWindow",
    "Lease",
    "LeaseLostError",
    "LoopController",
    "PipelineRetrainer",
    "RecommenderRetrainer",
    "Retrainer",
    "Rollout",
    "RolloutState",
    "Trained",
    "Trigger",
    "Verdict",
    "arm_share",
    "beats_champion",
    "due_trigger",
    "history",
    "limits_of",
    "request_retrain",
    "rollout_state",
]
