"""The monitor of a project: records from its audit log, references from its registry,
results in the monitoring tables beside the audit log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from driftloop.audit import open_audit_log
from driftloop.core.config import Settings
from driftloop.core.errors import InvalidParameterError
from driftloop.monitoring._monitor import Monitor
from driftloop.monitoring._records import AuditRecordSource, RecordSource
from driftloop.monitoring._references import ReferenceSource, RegistryReferences
from driftloop.monitoring._store import MonitoringStore
from driftloop.registry import Registry

__all__ = ["project_monitor"]


@contextmanager
def project_monitor(
    settings: Settings,
    *,
    models: Sequence[str] = (),
    source: RecordSource | None = None,
    references: ReferenceSource | None = None,
) -> Iterator[Monitor]:
    """A :class:`Monitor` of the project of ``settings``, closed on exit.

    Records come from the audit log (``settings.audit.url``) for ``models``, by default
    every model of the registry; references from the registry (each version's stored
    profile and held-out metrics). ``source`` or ``references`` replace either (for
    example records exported to Parquet). The monitor's ``run_once`` then assesses the
    given ``models`` or, without them, every model of its source.

    Example (the demo's step)::

        with project_monitor(load_settings()) as monitor:
            for report in monitor.run_once():
                print_report(report)
    """
    with ExitStack() as resources:
        store = MonitoringStore(settings.audit.url, root=settings.root)
        resources.callback(store.dispose)
        if references is None:
            registry = Registry.from_settings(settings)
            resources.callback(registry.close)
            references = RegistryReferences(
                registry, threshold=settings.monitoring.decision_threshold
            )
        if source is None:
            watched = list(models)
            if not watched and isinstance(references, RegistryReferences):
                watched = references.models()
            if not watched:
                raise InvalidParameterError(
                    "No model to monitor: the registry has none and no model was named "
                    "(--model NAME)."
                )
            log = open_audit_log(settings.audit.url, root=settings.root)
            resources.callback(log.close)
            source = AuditRecordSource(log, watched)
        yield Monitor(source, references, store, settings.monitoring)
