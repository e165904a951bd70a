"""One request through a model's traffic policy and fallback chain: the arm the policy
picks, then the champion, then the rules, then the safe default; the first link that
answers does, and the answer says which (``route``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftloop.core.errors import DriftloopError
from driftloop.serving._errors import HttpError
from driftloop.serving._scored import Answer, Deployment, Item, Scored, audit_batches
from driftloop.serving._validation import Options, ParsedInstances, RowSpec

if TYPE_CHECKING:
    from driftloop.serving._service import Service

__all__ = ["answer"]

log = logging.getLogger(__name__)


async def answer(
    service: Service,
    parse: Callable[[RowSpec], ParsedInstances],
    options: Options,
    *,
    key: Any = None,
    proto: str,
    started: float,
) -> Answer:
    """One request through the traffic policy and the fallback chain: the picked
    arm's version, then the champion, then the rules, then the safe default; the
    first link that answers does. ``parse`` reads the request's instances by a
    version's spec (versions may take different features)."""
    router, base = service.router, service.current
    assert base is not None, "predict before the model was loaded"
    arm = router.pick(key)
    chosen = service.deployments.get(arm, base)
    links = [chosen] if chosen is base else [chosen, base]
    failed: Exception | None = None
    degraded: str | None = None
    parsed: ParsedInstances | None = None
    parsed_by: RowSpec | None = None
    for link in links:
        breaker = link.breaker
        if not breaker.allow():
            _fell_back(service, link, "breaker-open")
            continue
        try:  # a request this version cannot read is the caller's (or our) error
            parsed, parsed_by = parse(link.spec), link.spec
        except BaseException:
            breaker.cancel()
            raise
        t0 = time.perf_counter()
        # the champion answering for a picked arm that failed is audited apart: the arm's
        # errors are counted from the audit log (monitoring's compare_arms)
        route = proto if link is chosen else f"{proto}:champion"
        try:
            scored = await service.score_on(link, parsed, options, route=route, started=started)
        except HttpError:  # the caller's request, or a refusal no link would change
            breaker.cancel()
            raise
        except Exception as exc:
            breaker.record(False, time.perf_counter() - t0)
            _fell_back(service, link, "error")
            if time.monotonic() - service.warned.get(link.target, -1e9) > 10.0:
                service.warned[link.target] = time.monotonic()  # once per 10 s, not per call
                log.warning(
                    "Model %s version %s failed (%s: %s); the next link answers.",
                    service.served.name, link.model.version, type(exc).__name__, exc,
                )  # fmt: skip
            failed = exc
            continue
        breaker.record(True, time.perf_counter() - t0)
        if scored.fallback:  # the online store is down: the rules answer
            degraded = scored.degraded
            break
        if router.shadow is not None and router.shadowed():
            service.shadow.offer(parse, scored.ids, parsed, link.spec)
        link_name = "model" if link is chosen else "champion"
        return _answered(service, scored, parsed, link, arm, link_name, chosen, started)
    if parsed_by is not base.spec:  # the rules read the champion's features
        parsed = None
    return await _last_resort(service, parse, parsed, arm, chosen, proto, started, degraded, failed)


def _answered(
    service: Service,
    scored: Scored,
    parsed: ParsedInstances,
    link: Deployment,
    arm: str,
    link_name: str,
    chosen: Deployment,
    started: float,
) -> Answer:
    version = link.model.version
    counted = service.arm_metrics.get((arm, version, link_name))
    if counted is None:
        m, name = service.metrics, service.served.name
        counted = (  # counted in bulk: a prometheus call per request cost 1-3 µs each
            m.count(m.arm_requests.labels(name, arm, version, link_name)).inc,
            m.tally(m.arm_latency.labels(name, arm, version)).observe,
            m.tally(m.arm_scores.labels(name, arm, version)).observe,
        )
        service.arm_metrics[arm, version, link_name] = counted
    inc, latency, score = counted
    inc()
    latency(time.perf_counter() - started)
    for value in scored.scores:
        score(value)
    return Answer(
        scored,
        parsed,
        service.served.name,
        version,
        arm,
        link_name,
        chosen.breaker.state,
        scored.degraded,
        service.traffic.revision,
    )


def _fell_back(service: Service, link: Deployment, reason: str) -> None:
    service.passed_over[link.target, reason] += 1  # for the dashboard (WorkerBoard)
    service.metrics.fallbacks.labels(service.served.name, link.target, reason).inc()
    if reason == "error":
        service.metrics.arm_errors.labels(
            service.served.name, link.target, link.model.version
        ).inc()


async def _last_resort(
    service: Service,
    parse: Callable[[RowSpec], ParsedInstances],
    parsed: ParsedInstances | None,
    arm: str,
    chosen: Deployment,
    proto: str,
    started: float,
    degraded: str | None,
    failed: Exception | None,
) -> Answer:
    """The rules model, or the safe default, answers (audited under their own route);
    without a fallback declared the request fails with 503."""
    base = service.current
    assert base is not None
    rules = base.rules
    if rules is None:
        reason = type(failed).__name__ if failed is not None else "breakers open"
        raise HttpError(
            "unavailable",
            f"Model '{service.served.name}' could not answer ({reason}) and declares no "
            f"fallback ([models.{service.served.name}.fallback]).",
        )
    if parsed is None:
        parsed = parse(base.spec)
    n = len(parsed.matrix)
    try:
        raw = rules.predict(parsed.matrix, parsed.raw)
    except DriftloopError as exc:  # rules that fail without a default: no answer
        raise HttpError(
            "unavailable",
            f"Model '{service.served.name}' could not answer and its fallback rules gave "
            f"no answer: {exc.message}",
        ) from None
    link_name = "rules" if rules.expression is not None else "default"
    # no explanations: the model's contributions would not explain the rules' answer
    item = Item(parsed, n, [], raw, None, Options(), f"{proto}:{link_name}", started)
    item.degraded = degraded or "fallback"
    scored = service.scored(base, item)
    if service.writer is not None:
        await service.writer.awrite_batches(audit_batches(base, [item], [[{}] * n], [scored], [0]))
    service.metrics.degraded.labels(service.served.name, item.degraded).inc()
    return _answered(service, scored, parsed, base, arm, link_name, chosen, started)
