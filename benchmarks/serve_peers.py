"""The Python serving peers of ``serve_http.py``: their apps, each in its own venv.

LitServe and BentoML serve the same LightGBM model with their adaptive batching. They
are installed (bounded in time) into ``<tmp>/driftloop-bench-peers/<name>``, never into
driftloop's own environment.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

PEERS = Path(tempfile.gettempdir()) / "driftloop-bench-peers"
LITSERVE_APP = """
import sys
import lightgbm as lgb
import litserve as ls
import numpy as np

FEATURES = {features!r}

class API(ls.LitAPI):
    def setup(self, device):
        self.booster = lgb.Booster(model_file={model!r})
    def decode_request(self, request):
        row = request["instances"][0]
        return [row[f] for f in FEATURES]
    def batch(self, inputs):
        return np.asarray(inputs, dtype=float)
    def predict(self, x):
        return self.booster.predict(x, num_threads=1)
    def unbatch(self, output):
        return list(output)
    def encode_response(self, output):
        return {{"score": float(output)}}

if __name__ == "__main__":
    ls.LitServer(API(), accelerator="cpu", max_batch_size=32, batch_timeout=0.005).run(
        port=int(sys.argv[1]), generate_client_file=False
    )
"""
BENTOML_APP = """
import bentoml
import lightgbm as lgb
import numpy as np

# No access log (driftloop and the echo run uvicorn with --no-access-log). A latency
# budget no batch reaches: with 1,000 ms BentoML's dispatcher answers 503 "process is
# overloaded" under 64 connections on this machine, which is load shedding, not serving.
@bentoml.service(workers={workers}, logging={{"access": {{"enabled": False}}}})
class Fraud:
    def __init__(self):
        self.booster = lgb.Booster(model_file={model!r})

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=60_000)
    def predict(self, instances: np.ndarray) -> np.ndarray:
        return self.booster.predict(instances, num_threads=1)
"""


def peer_python(name: str, budget_s: float) -> Path | None:
    """The peer's venv python, installing it (bounded in time) when absent."""
    venv = PEERS / name
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import {name}, lightgbm"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    PEERS.mkdir(parents=True, exist_ok=True)
    print(f"  installing {name} into {venv} (at most {budget_s:.0f} s)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", name, "lightgbm", "numpy"],
            check=True,
            timeout=budget_s,
            capture_output=True,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"  {name}: install failed: {exc}", flush=True)
        return None
    return python if subprocess.run(probe, capture_output=True).returncode == 0 else None
