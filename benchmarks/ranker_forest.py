"""Ranking in numpy against LightGBM's ``predict``: exact, and is it cheaper?

The ranker (LightGBM lambdarank, ``benchmarks/recsys.py``'s ``CONFIG``: 30 trees of 15
leaves, ``num_threads=1``) is the largest part of a recommend answer's CPU
(``benchmarks/recsys_profile.py``). This measures the alternative of evaluating the trees
in numpy, all at once: :class:`Forest` holds every node of every tree in flat arrays (a
leaf is a node whose two children are itself) and moves a ``(trees x rows)`` array of
node indices down one level per step (the trees still moving, deepest first, are a prefix
of the array), so a batch costs ``depth`` vectorised steps whatever its size.

The split rule is LightGBM's (``Tree::NumericalDecision``), so scores are LightGBM's:

* a value within ``1e-35`` of zero is read as ``0.0`` (LightGBM drops it from the row);
* a NaN on a node whose ``missing_type`` is not ``NaN`` is read as ``0.0``;
* with ``missing_type`` ``Zero``, a zero (or such a NaN) takes the node's
  ``default_left``; with ``NaN``, a NaN takes ``default_left``;
* any other value goes left when ``value <= threshold``.

:func:`compile_forest` refuses (returns ``None``) what it does not evaluate exactly:
categorical splits, linear trees, several trees per iteration, averaged output. Tree
outputs are added in tree order, as LightGBM adds them, so the sums are LightGBM's to the
last bit. The run first checks that (bit-equal scores on the served model's own candidate
rows, and on random rows with NaNs, zeros and near-zeros for rankers trained with NaN
missing values, with ``zero_as_missing``, and a categorical one that must be refused),
then times both over the same batches, alternating, in CPU time (``time.process_time``).

    python benchmarks/ranker_forest.py [--reps 8] [--batches 20] [--cache DIR]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Forest", "compile_forest"]

# LightGBM's kZeroThreshold (the float 1e-35f as a double): a value with |x| <= this is
# read as 0.0 before any tree sees it, and is "zero" for missing_type Zero.
_ZERO = float(np.float32(1e-35))


# What a node reads of a feature: the feature itself with NaN (and, where the node treats
# zero as missing, zero) replaced by -inf when that goes left or +inf when it goes right;
# every threshold is finite, so the split is then ``value <= threshold`` alone.
_NAN_LEFT, _NAN_RIGHT, _ZERO_LEFT, _ZERO_RIGHT = range(4)


@dataclass(frozen=True)
class Forest:
    """Flat node tables of an ensemble of binary trees over ``features`` columns.

    Node ``k`` is named ``2k`` (so its right child sits next to its left one): its
    ``children`` are at ``2k`` (left) and ``2k + 1`` (right), each a node name; the other
    tables hold node ``k``'s entry at both ``2k`` and ``2k + 1``. ``roots[t]`` is tree
    ``t``'s first node, trees sorted by depth, deepest first (``depths``); a leaf has both
    children equal to itself and ``value`` its output. ``column`` is the feature a node
    reads, in one of the four readings of the features (``variant * features +
    feature``, variants as ``_NAN_LEFT`` ...), ``variants`` those the model uses.
    """

    features: int
    roots: NDArray[np.intp]
    depths: tuple[int, ...]
    column: NDArray[np.intp]
    threshold: NDArray[np.float64]
    children: NDArray[np.intp]
    value: NDArray[np.float64]
    variants: tuple[int, ...]
    order: NDArray[np.intp]  # tree t of the model is roots[order[t]]

    def predict(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        """Raw scores of ``rows`` (``n x features``), equal to LightGBM's ``predict``."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.features:
            msg = f"Forest expects rows of {self.features} features; got shape {x.shape}."
            raise ValueError(msg)
        n, trees = x.shape[0], len(self.roots)
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        # The readings column by column (4 * features x n), so that a node's value of row r
        # is at column[node] * n + r; nodes are tree-major, a tree's n rows side by side,
        # so the trees still moving (the deepest first) are a prefix of the array.
        flat = self._readings(x).ravel()
        columns = self.column * n
        rows_of = np.tile(np.arange(n, dtype=np.intp), trees)
        node = np.repeat(self.roots, n)
        at = np.empty_like(node)
        values = np.empty(node.shape, dtype=np.float64)
        cuts = np.empty(node.shape, dtype=np.float64)
        right = np.empty(node.shape, dtype=np.bool_)
        for active in self._active:  # numpy's take: "clip" is unbuffered; indices are valid
            m = active * n
            node_m, at_m = node[:m], at[:m]
            np.take(columns, node_m, out=at_m, mode="clip")
            np.add(at_m, rows_of[:m], out=at_m)
            np.take(flat, at_m, out=values[:m], mode="clip")
            np.take(self.threshold, node_m, out=cuts[:m], mode="clip")
            np.greater(values[:m], cuts[:m], out=right[:m])
            np.add(node_m, right[:m], out=at_m)  # node is 2k: 2k + 1 is its right child
            np.take(self.children, at_m, out=node_m, mode="clip")
        # (trees x rows), summed over trees in tree order as LightGBM sums them
        leaves = self.value.take(node).reshape(trees, n)
        return np.add.reduce(leaves[self.order], axis=0)

    @property
    def _active(self) -> list[int]:
        """How many trees (the deepest first) still move at each level."""
        top = self.depths[0] if self.depths else 0
        return [sum(1 for d in self.depths if d > level) for level in range(top)]

    def _readings(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The four readings of the features, one feature per row (``4 * features x n``;
        readings the model does not use are left unset)."""
        n, f = x.shape
        # LightGBM drops |x| <= kZeroThreshold from a row: it reads 0.0
        x = np.where(np.abs(x) <= _ZERO, 0.0, x).T
        nan = np.isnan(x)
        zero = nan | (x == 0.0)
        table = np.empty((4 * f, n), dtype=np.float64)
        for variant in self.variants:
            part = table[variant * f : (variant + 1) * f]
            part[...] = x
            missing = nan if variant in (_NAN_LEFT, _NAN_RIGHT) else zero
            part[missing] = -np.inf if variant in (_NAN_LEFT, _ZERO_LEFT) else np.inf
        return table


def compile_forest(model: Mapping[str, Any]) -> Forest | None:
    """The :class:`Forest` of a LightGBM ``Booster.dump_model()``, or ``None`` when the
    model uses anything this evaluation does not reproduce exactly."""
    if model.get("num_tree_per_iteration", 1) != 1 or model.get("num_class", 1) != 1:
        return None
    if model.get("average_output", False) or model.get("linear_tree", False):
        return None
    infos = model.get("tree_info", [])
    features = int(model.get("max_feature_idx", -1)) + 1
    if not infos or features <= 0:
        return None
    trees: list[_Tree] = []
    for info in infos:
        tree = _Tree(features)
        if not tree.add(info.get("tree_structure", {}), 0):
            return None
        trees.append(tree)
    ranked = sorted(range(len(trees)), key=lambda t: -trees[t].depth)  # stable
    column: list[int] = []
    threshold: list[float] = []
    children: list[int] = []
    value: list[float] = []
    roots: list[int] = []
    for t in ranked:
        tree, base = trees[t], len(column)
        roots.append(base)
        column += tree.column
        threshold += tree.threshold
        children += [base + child for child in tree.children]
        value += tree.value
    order = np.empty(len(trees), dtype=np.intp)
    order[ranked] = np.arange(len(trees))
    return Forest(
        features=features,
        roots=2 * np.asarray(roots, dtype=np.intp),
        depths=tuple(trees[t].depth for t in ranked),
        column=np.repeat(np.asarray(column, dtype=np.intp), 2),
        threshold=np.repeat(np.asarray(threshold, dtype=np.float64), 2),
        children=2 * np.asarray(children, dtype=np.intp),
        value=np.repeat(np.asarray(value, dtype=np.float64), 2),
        variants=tuple(sorted({c // features for c in column})),  # leaves read variant 0
        order=order,
    )


class _Tree:
    """One tree's nodes in LightGBM's dump, flattened (node indices local to the tree)."""

    def __init__(self, features: int) -> None:
        self.features = features
        self.column: list[int] = []
        self.threshold: list[float] = []
        self.children: list[int] = []  # left of node k at 2k, right at 2k + 1
        self.value: list[float] = []
        self.depth = 0

    def add(self, node: Mapping[str, Any], level: int) -> bool:
        """Append ``node`` and its subtree; ``False`` if it has a split this cannot read."""
        k = len(self.column)
        self.column.append(0)
        self.threshold.append(np.inf)
        self.children += [k, k]  # a leaf: both children itself
        self.value.append(0.0)
        if "leaf_value" in node:
            if set(node) - {"leaf_index", "leaf_value", "leaf_weight", "leaf_count"}:
                return False  # a linear leaf (leaf_coeff, leaf_const, leaf_features)
            self.value[k] = float(node["leaf_value"])
            self.depth = max(self.depth, level)
            return True
        if node.get("decision_type") != "<=":
            return False  # categorical split ("==")
        feature = int(node["split_feature"])
        cut = float(node["threshold"])
        missing = node.get("missing_type", "None")
        if not np.isfinite(cut) or not 0 <= feature < self.features:
            return False
        default_left = bool(node.get("default_left", True))
        if missing == "None":  # NaN is read as 0.0
            variant = _NAN_LEFT if cut >= 0.0 else _NAN_RIGHT
        elif missing == "NaN":
            variant = _NAN_LEFT if default_left else _NAN_RIGHT
        elif missing == "Zero":  # NaN is read as 0.0, and 0.0 is missing
            variant = _ZERO_LEFT if default_left else _ZERO_RIGHT
        else:
            return False
        self.column[k] = variant * self.features + feature
        self.threshold[k] = cut
        left = len(self.column)
        if not self.add(node["left_child"], level + 1):
            return False
        right = len(self.column)
        if not self.add(node["right_child"], level + 1):
            return False
        self.children[2 * k : 2 * k + 2] = [left, right]
        return True


def _check_exact(booster: Any, rows: NDArray[np.float64]) -> int:
    """Bit-equality of the forest's scores with LightGBM's on ``rows``; the row count."""
    forest = compile_forest(booster.dump_model())
    assert forest is not None, "a numerical-only model must compile"
    want = booster.predict(rows, num_threads=1)
    got = forest.predict(rows)
    assert np.array_equal(want, got), float(np.max(np.abs(want - got)))
    return len(rows)


def _random_rows(rng: np.random.Generator, n: int, features: int) -> NDArray[np.float64]:
    rows = rng.normal(size=(n, features))
    rows[rng.random(rows.shape) < 0.15] = np.nan
    rows[rng.random(rows.shape) < 0.15] = 0.0
    rows[rng.random(rows.shape) < 0.05] = 1e-36
    return rows


def self_check() -> None:
    """Exactness on trained rankers with missing values, and the categorical refusal."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    n, features = 3000, 6
    groups = [30] * (n // 30)
    checked = 0
    for extra in ({}, {"zero_as_missing": True}, {"use_missing": False}):
        train = _random_rows(rng, n, features)
        labels = (np.nan_to_num(train[:, 0]) + rng.normal(size=n) > 0.5).astype(float)
        params = {"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 20,
                  "verbose": -1, "num_threads": 1, "seed": 0, **extra}  # fmt: skip
        booster = lgb.train(params, lgb.Dataset(train, labels, group=groups), 30)
        checked += _check_exact(booster, _random_rows(rng, 5000, features))
    train = _random_rows(rng, n, features)
    train[:, 1] = rng.integers(0, 8, size=n)
    labels = (train[:, 1] % 3 == 0).astype(float)
    params = {"objective": "lambdarank", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 20}
    data = lgb.Dataset(train, labels, group=groups, categorical_feature=[1])
    categorical = lgb.train(params, data, 10)
    assert compile_forest(categorical.dump_model()) is None, "categorical splits must fall back"
    print(f"exact on {checked} random rows of 3 rankers (NaN, zero-as-missing, no missing);"
          " a categorical ranker is refused")  # fmt: skip


def main() -> None:
    import argparse
    import random
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from recsys_profile import trained

    from driftloop.recsys import RecommendRequest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=8, help="alternations of the two")
    parser.add_argument("--batches", type=int, default=20, help="batches of 64 requests")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/driftloop-recsys-profile"))
    args = parser.parse_args()
    self_check()
    rec, users = trained(args.cache)
    assert rec.ranker is not None
    booster = rec.ranker.booster
    forest = compile_forest(booster.dump_model())
    assert forest is not None
    captured: list[NDArray[np.float64]] = []
    score = rec.ranker.score

    def keep(rows: NDArray[np.float64]) -> NDArray[np.float64]:
        captured.append(rows.copy())
        return score(rows)

    rec.ranker.score = keep  # type: ignore[method-assign]
    rng = random.Random(0)
    for _ in range(args.batches):
        rec.recommend_many([RecommendRequest(rng.choice(users), n=10) for _ in range(64)])
    del rec.ranker.score
    checked = sum(_check_exact(booster, rows) for rows in captured)
    answers = 64 * len(captured)
    print(
        f"exact on the served model's {checked} candidate rows ({answers} answers);"
        f" trees {len(forest.roots)}, depths {min(forest.depths)}-{max(forest.depths)}"
    )
    arms = {
        "LightGBM predict": lambda rows: booster.predict(rows, num_threads=1),
        "numpy forest": forest.predict,
    }
    cpu = dict.fromkeys(arms, 0.0)
    for rep in range(args.reps):
        for name in list(arms)[:: 1 if rep % 2 == 0 else -1]:
            started = time.process_time()
            for rows in captured:
                arms[name](rows)
            cpu[name] += time.process_time() - started
    for name, seconds in cpu.items():
        print(f"{name:<20}{1e6 * seconds / (answers * args.reps):>8.1f} CPU us per answer")


if __name__ == "__main__":
    main()
