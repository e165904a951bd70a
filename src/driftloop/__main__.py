from __future__ import annotations

from driftloop.cli import main

main()
