"""The web dashboard: the loop at a glance, server-rendered with inline SVG charts.

Mounted at ``/ui`` by ``driftloop serve``; ``driftloop ui`` serves it alone. Pages read
through the parts' public faces: the registry (versions, aliases, traffic policies), the
audit log, the monitoring results and the feature statistics.
"""

from __future__ import annotations

from driftloop.ui._app import create_ui, standalone_ui
from driftloop.ui._project import ProjectReader

__all__ = ["ProjectReader", "create_ui", "standalone_ui"]
