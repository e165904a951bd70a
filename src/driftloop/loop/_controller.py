"""The loop controller: one pass over the models whose lease it holds, or passes forever.

>>> import tempfile
>>> from driftloop.core.config import load_settings
>>> settings = load_settings(root=tempfile.mkdtemp(), environ={},
...                          overrides={"loop": {"fraud": {"cooldown": "1h"}}})
>>> controller = LoopController.from_settings(settings, holder="doc")
>>> controller.run_once()  # no champion yet: nothing to do
[]
>>> controller.close()
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from driftloop.audit import AuditLog, open_audit_log
from driftloop.core.config import LoopPolicy, Settings
from driftloop.core.errors import BackendUnavailableError, DriftloopError, InvalidParameterError
from driftloop.loop._analysis import Analysis
from driftloop.loop._arm_analysis import ArmAnalysis
from driftloop.loop._decisions import Decision, RolloutState, record, rollout_state
from driftloop.loop._lease import Lease, LeaseLostError
from driftloop.loop._recsys_retrain import FlavorRetrainer, RecommenderRetrainer
from driftloop.loop._retrain import PipelineRetrainer, Retrainer
from driftloop.loop._rollout import GateWindow, Rollout
from driftloop.monitoring import Alert, AlertSink, MonitoringStore, sink_from_spec
from driftloop.registry import Registry

__all__ = ["LoopController", "request_retrain"]

log = logging.getLogger("driftloop.loop")
ALERTED = {"promote": "promoted", "rollback": "rolled-back", "reject": "rejected"}
MAX_TRANSITIONS = 16  # per model and pass: a pass never spins


def default_holder() -> str:
    """``host:pid``: who holds a lease, as the decision log shows it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def request_retrain(
    registry: Registry, model: str, reason: str, *, who: str, at: datetime | None = None
) -> Decision:
    """Ask the controller to retrain ``model`` (a ``request`` row in the decision log:
    the rollout state is not changed; the leader acts on it at its next pass)."""
    reason = reason.strip()
    if not reason:
        raise InvalidParameterError(f"A retraining request for model '{model}' needs a reason.")
    registry.get(model)  # an unknown model is named as such
    with registry.release() as release:
        state = rollout_state(release.conn, model)
        decision = Decision(
            at=at or datetime.now(UTC),
            model=model,
            state=state.state,
            action="request",
            rule=reason,
            who=who,
            from_version=state.champion,
            to_version=state.challenger,
            step=state.step,
        )
        return replace(decision, id=record(release.conn, decision))


class LoopController:
    """Leads the rollouts of the models of ``policies`` that it holds the lease of.

    Collaborators are passed in: the ``analysis`` judging each check, the ``retrainer``,
    the ``audit`` log (the gate's labelled window), ``windows`` (a model's stored
    monitoring windows), alert ``sinks`` and the ``clock``.
    """

    def __init__(
        self,
        registry: Registry,
        policies: Mapping[str, LoopPolicy],
        *,
        analysis: Analysis,
        retrainer: Retrainer,
        holder: str | None = None,
        lease_ttl: timedelta = timedelta(seconds=60),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: AuditLog | None = None,
        windows: Callable[[str], Sequence[Mapping[str, Any]]] = lambda model: [],
        sinks: Sequence[AlertSink] = (),
        sticky_keys: Mapping[str, str] | None = None,
        gate_window: GateWindow | None = None,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.policies = {m: p for m, p in policies.items() if p.enabled}
        self.clock = clock
        self.lease = Lease(registry, holder or default_holder(), lease_ttl, clock=clock)
        self.sinks = list(sinks)
        self.rollouts = {
            model: Rollout(
                model,
                policy,
                registry,
                self.lease,
                analysis,
                retrainer,
                clock,
                windows=windows,
                audit=audit,
                gate_window=gate_window or GateWindow(),
                sticky_key=(sticky_keys or {}).get(model),
                on_decision=self._decided,
            )
            for model, policy in sorted(self.policies.items())
        }
        self._on_close = on_close

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        **options: Any,
    ) -> LoopController:
        """The controller of the project's ``[loop.<model>]`` policies: its registry,
        audit log, monitoring windows and alert sinks, judged by
        :class:`~driftloop.loop.ArmAnalysis` unless ``analysis=`` is given; each model
        retrained by its flavor's retrainer (recommenders:
        :class:`~driftloop.loop.RecommenderRetrainer`; others: the training pipeline)
        unless ``retrainer=`` is given."""
        registry = Registry.from_settings(settings)
        audit = open_audit_log(settings.audit.url, root=settings.root)
        store = MonitoringStore(settings.audit.url, root=settings.root)
        policies = settings.loop
        plans = {m: p.rollout for m, p in policies.items()}
        options.setdefault("analysis", ArmAnalysis(audit, registry.traffic, plans, clock=clock))
        options.setdefault(
            "retrainer",
            FlavorRetrainer(
                registry,
                {"recommender": RecommenderRetrainer(settings, registry)},
                PipelineRetrainer(settings, registry),
            ),
        )
        mon = settings.monitoring
        window = pd.Timedelta(mon.window_size) if mon.window_by == "time" else pd.Timedelta("1D")
        gate = GateWindow(window.to_pytimedelta(), mon.min_labelled, mon.decision_threshold)

        def close() -> None:
            store.dispose()
            audit.close()
            registry.close()

        return cls(
            registry,
            policies,
            holder=holder,
            clock=clock,
            audit=audit,
            windows=store.window_rows,
            sinks=[sink_from_spec(spec) for spec in mon.alerts],
            sticky_keys={
                m: p.sticky_key for m, p in settings.serving.traffic.items() if p.sticky_key
            },
            gate_window=gate,
            on_close=close,
            **options,
        )

    def close(self) -> None:
        """Let the leases go and release the connections the controller opened."""
        for model in self.rollouts:
            try:
                self.lease.give_up(model)
            except DriftloopError as exc:
                log.warning("could not give up the lease of %s: %s", model, exc)
        self._on_close()

    # -- passes ------------------------------------------------------------------------
    def run_once(self) -> list[Decision]:
        """One pass: for each model whose lease this controller holds (or takes), the
        transitions due now; a model another controller leads is left alone."""
        decisions: list[Decision] = []
        for model, rollout in self.rollouts.items():
            if not self.lease.acquire(model):
                continue
            try:
                with self._renewing(model):
                    for _ in range(MAX_TRANSITIONS):
                        decision = rollout.advance()
                        if decision is None:
                            break
                        decisions.append(decision)
            except LeaseLostError as exc:
                log.warning("%s", exc)
            except DriftloopError as exc:  # one model's trouble must not stop the others
                log.error("loop pass over model %s stopped: %s", model, exc)
        return decisions

    def run(
        self,
        interval: float,
        *,
        stop: threading.Event | None = None,
        on_pass: Callable[[list[Decision]], None] = lambda decisions: None,
    ) -> None:
        """Passes every ``interval`` seconds until ``stop`` is set; a pass that fails on
        an unreachable database is logged and the next one tries again."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                on_pass(self.run_once())
            except BackendUnavailableError as exc:
                log.error("loop pass failed: %s", exc)
            except Exception:  # a bug in one pass must not stop the loop: log, try again
                log.exception("loop pass failed")
            stop.wait(interval)

    def status(self, model: str) -> tuple[RolloutState, str | None]:
        """The model's rollout state and who leads it now."""
        return rollout_state(self.registry.engine, model), self.lease.current(model)

    # -- helpers -----------------------------------------------------------------------
    @contextmanager
    def _renewing(self, model: str) -> Iterator[None]:
        """Renew the lease from a thread while a long transition (a retraining) runs."""
        done = threading.Event()
        period = max(self.lease.ttl.total_seconds() / 3, 0.05)

        def renew() -> None:
            while not done.wait(period):
                try:
                    self.lease.acquire(model)
                except DriftloopError as exc:  # the next transition checks the lease anyway
                    log.warning("could not renew the lease of %s: %s", model, exc)

        thread = threading.Thread(target=renew, name=f"lease-{model}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _decided(self, decision: Decision) -> None:
        log.info(
            "%s: %s -> %s (v%s -> v%s): %s",
            decision.model, decision.action, decision.state,
            decision.from_version, decision.to_version, decision.rule,
        )  # fmt: skip
        kind = ALERTED.get(decision.action)
        if kind is None or not self.sinks:
            return
        alert = Alert(
            incident_id=decision.id,
            model=decision.model,
            version=decision.to_version or 0,
            route="loop",
            kind=kind,
            window_start="",
            window_end=decision.at.isoformat(),
            message=f"{kind} v{decision.to_version}: {decision.rule}",
        )
        for sink in self.sinks:
            try:
                sink.send(alert)
            except BackendUnavailableError as exc:
                log.error("alert sink %s failed: %s", type(sink).__name__, exc)
