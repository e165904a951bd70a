"""Choosing the fastest correct runtime for a LightGBM model, once, at load.

ONNX Runtime scores one row about 3x faster than ``Booster.predict`` here, but it
computes in float32: it is used only when it matches the Booster's scores to
``tolerance`` on probe rows (spread over every split threshold's range, with missing
values), else the Booster is kept. Both run with one thread: several OpenMP or ONNX
pools in several workers on few cores collapse throughput (BENCHMARKING.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Runtime", "choose_lightgbm_runtime", "probe_rows"]

log = logging.getLogger(__name__)
Matrix = npt.NDArray[np.float64]
Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Runtime:
    """A scoring function and why it was chosen."""

    name: str  # "onnxruntime" or "lightgbm"
    predict: Callable[[Matrix], Scores]
    max_abs_diff: float | None  # ONNX vs Booster on the probe rows, when compared
    reason: str


def probe_rows(booster: Any, n: int = 2_000, seed: int = 0) -> Matrix:
    """Rows spread over the range of every feature's split thresholds, 5% missing."""
    rng = np.random.default_rng(seed)
    n_features = booster.num_feature()
    lows = np.full(n_features, -1.0)
    highs = np.full(n_features, 1.0)
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node and isinstance(node.get("threshold"), float | int):
                f, t = node["split_feature"], float(node["threshold"])
                if abs(t) < 1e30:  # LightGBM writes "no upper bound" splits as 1e300
                    lows[f], highs[f] = min(lows[f], t), max(highs[f], t)
                stack.extend((node["left_child"], node["right_child"]))
    span = highs - lows
    rows = rng.uniform(lows - 0.1 * span, highs + 0.1 * span, size=(n, n_features))
    rows[rng.random(rows.shape) < 0.05] = np.nan
    return rows


def _booster_runtime(booster: Any, reason: str, diff: float | None = None) -> Runtime:
    def predict(x: Matrix) -> Scores:
        return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)

    return Runtime("lightgbm", predict, diff, reason)


def choose_lightgbm_runtime(
    booster: Any,
    *,
    onnx_model: bytes | None = None,
    probe: Matrix | None = None,
    tolerance: float = 1e-6,
    prefer_onnx: bool = True,
) -> Runtime:
    """ONNX Runtime when it agrees with ``booster`` to ``tolerance``, else the Booster.

    ``onnx_model`` is used when given (e.g. stored in the registry), else the Booster is
    converted with onnxmltools. Binary and regression objectives only; others keep the
    Booster.
    """
    if not prefer_onnx:
        return _booster_runtime(booster, "ONNX Runtime not wanted")
    objective = str(booster.params.get("objective", booster.dump_model().get("objective", "")))
    if booster.num_model_per_iteration() != 1:
        return _booster_runtime(booster, f"objective {objective!r} has several outputs")
    try:
        session = _onnx_session(booster, onnx_model)
    except Exception as exc:  # conversion or load failed: the Booster is still correct
        log.info("ONNX conversion failed, using the LightGBM Booster: %s", exc)
        return _booster_runtime(booster, f"ONNX conversion failed: {exc}")
    input_name = session.get_inputs()[0].name
    output = len(session.get_outputs()) - 1

    def predict(x: Matrix) -> Scores:
        with np.errstate(over="ignore"):  # beyond float32 is +-inf: the same branch
            x32 = x.astype(np.float32)
        out = session.run(None, {input_name: x32})[output]
        out = np.asarray(out, dtype=np.float64)
        return out[:, -1] if out.ndim == 2 else out

    rows = probe if probe is not None else probe_rows(booster)
    diff = float(np.max(np.abs(predict(rows) - booster.predict(rows, num_threads=1))))
    if not diff <= tolerance:
        return _booster_runtime(
            booster, f"ONNX differs from LightGBM by {diff:.2e} > {tolerance:.0e}", diff
        )
    return Runtime("onnxruntime", predict, diff, f"matches LightGBM to {diff:.1e}")


def _onnx_session(booster: Any, onnx_model: bytes | None) -> Any:
    import onnxruntime as ort

    if onnx_model is None:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        proto = convert_lightgbm(
            booster,
            initial_types=[("input", FloatTensorType([None, booster.num_feature()]))],
            zipmap=False,
        )
        onnx_model = proto.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
