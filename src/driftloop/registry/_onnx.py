"""ONNX export of LightGBM models, and the choice of runtime: the one place for both.

ONNX Runtime scores one row about 3x faster than ``Booster.predict`` here, but computes
in float32: it is used only when it matches the Booster's outputs to ``tolerance`` on
probe rows spread over every split threshold's range (categorical features over their
codes), with missing values; else the Booster is kept, and the reason is said. Both run
with one thread: several OpenMP or ONNX pools in several server workers on few cores
collapse throughput (BENCHMARKING.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ONNX_TOLERANCE",
    "Runtime",
    "export_lightgbm_onnx",
    "lightgbm_runtime",
    "onnx_session",
    "probe_rows",
]

log = logging.getLogger(__name__)
Matrix = NDArray[np.float64]
ONNX_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Runtime:
    """A scoring function (raw outputs: one column, or one per class) and why it was
    chosen."""

    name: str  # "onnxruntime", "lightgbm" or a flavor's own
    predict: Callable[[Matrix], NDArray[np.float64]]
    max_abs_diff: float | None  # ONNX vs Booster on the probe rows, when compared
    reason: str


def probe_rows(
    booster: Any, categorical: Mapping[int, int] | None = None, n: int = 2_000, seed: int = 0
) -> Matrix:
    """Rows spread over the range of every feature's split thresholds, 5% missing;
    ``categorical`` maps a column to its number of categories (codes 0..k-1)."""
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
            if "left_child" in node:
                stack.extend((node["left_child"], node["right_child"]))
    span = highs - lows
    rows = rng.uniform(lows - 0.1 * span, highs + 0.1 * span, size=(n, n_features))
    for column, k in (categorical or {}).items():
        rows[:, column] = rng.integers(0, max(k, 1), size=n)
    rows[rng.random(rows.shape) < 0.05] = np.nan
    return rows


def onnx_session(onnx_model: bytes, *, threads: int = 1) -> Any:
    """An ONNX Runtime session with explicit thread counts (one pool per process)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def _onnx_predict(session: Any, task: str) -> Callable[[Matrix], NDArray[np.float64]]:
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    wanted = "probabilities" if "probabilities" in names else names[-1]
    binary = task == "binary"

    def predict(x: Matrix) -> NDArray[np.float64]:
        with np.errstate(over="ignore"):  # beyond float32 is +-inf: the same branch
            x32 = x.astype(np.float32)
        (out,) = session.run([wanted], {input_name: x32})
        out = np.asarray(out, dtype=np.float64)
        if out.ndim == 2 and (binary or out.shape[1] == 1):
            return out[:, -1]  # binary: the positive class; regression: the one column
        return out

    return predict


def _convert(booster: Any) -> bytes:
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    proto = convert_lightgbm(
        booster,
        initial_types=[("input", FloatTensorType([None, booster.num_feature()]))],
        zipmap=False,
        target_opset=15,
    )
    data: bytes = proto.SerializeToString()
    return data


def _booster_predict(booster: Any) -> Callable[[Matrix], NDArray[np.float64]]:
    def predict(x: Matrix) -> NDArray[np.float64]:
        return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)

    return predict


def _compare(
    booster: Any, onnx_model: bytes, task: str, probe: Matrix, tolerance: float
) -> tuple[Callable[[Matrix], NDArray[np.float64]], float]:
    predict = _onnx_predict(onnx_session(onnx_model), task)
    expected = _booster_predict(booster)(probe)
    got = predict(probe)
    if got.shape != expected.shape:
        return predict, float("inf")
    return predict, float(np.max(np.abs(got - expected)))


def export_lightgbm_onnx(
    booster: Any, task: str, categorical: Mapping[int, int] | None = None
) -> tuple[bytes | None, str]:
    """The model in ONNX when it matches the Booster to :data:`ONNX_TOLERANCE` on probe
    rows, else None; and what happened, in words."""
    try:
        data = _convert(booster)
        _, diff = _compare(booster, data, task, probe_rows(booster, categorical), ONNX_TOLERANCE)
    except Exception as exc:  # the converter's and runtime's errors are many and untyped
        return None, f"ONNX conversion failed: {type(exc).__name__}: {exc}"
    if not diff <= ONNX_TOLERANCE:
        return None, f"ONNX differs from LightGBM by {diff:.2e} > {ONNX_TOLERANCE:.0e}"
    return data, f"matches LightGBM to {diff:.1e}"


def lightgbm_runtime(
    booster: Any,
    task: str,
    *,
    onnx_model: bytes | None = None,
    categorical: Mapping[int, int] | None = None,
    prefer_onnx: bool = True,
    tolerance: float = ONNX_TOLERANCE,
) -> Runtime:
    """ONNX Runtime when it agrees with ``booster`` to ``tolerance``, else the Booster.

    ``onnx_model`` is used when given (stored in the registry), else the Booster is
    converted now.
    """
    native = _booster_predict(booster)
    if not prefer_onnx:
        return Runtime("lightgbm", native, None, "ONNX Runtime not wanted")
    try:
        data = onnx_model if onnx_model is not None else _convert(booster)
        probe = probe_rows(booster, categorical)
        predict, diff = _compare(booster, data, task, probe, tolerance)
    except Exception as exc:  # conversion or load failed: the Booster is still correct
        log.info("ONNX conversion failed, using the LightGBM Booster: %s", exc)
        return Runtime("lightgbm", native, None, f"ONNX conversion failed: {exc}")
    if not diff <= tolerance:
        reason = f"ONNX differs from LightGBM by {diff:.2e} > {tolerance:.0e}"
        return Runtime("lightgbm", native, diff, reason)
    return Runtime("onnxruntime", predict, diff, f"matches LightGBM to {diff:.1e}")
