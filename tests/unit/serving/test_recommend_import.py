from __future__ import annotations

import subprocess
import sys


def test_the_server_and_cli_import_without_the_recsys_extras_libraries() -> None:
    """`pip install driftloop` (no recsys extra) must still serve and run the CLI: the
    recommender's PyTorch and hnswlib load only when a recommender is used."""
    code = (
        "import sys, driftloop.serving, driftloop.cli, driftloop.monitoring, driftloop.recsys\n"
        "print(sorted(m for m in ('torch', 'hnswlib', 'implicit') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
