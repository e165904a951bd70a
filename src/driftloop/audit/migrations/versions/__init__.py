"""Migration scripts, one per schema change, applied in order by Alembic."""

from __future__ import annotations
