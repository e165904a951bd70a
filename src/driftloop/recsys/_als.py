"""The matrix-factorization baseline: implicit's ALS on the user x item matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["AlsBaseline"]


class AlsBaseline:
    """``implicit`` ALS over implicit feedback (every interaction counts once)."""

    def __init__(
        self,
        factors: int = 64,
        iterations: int = 15,
        regularization: float = 0.05,
        alpha: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.seed = seed

    def fit(self, interactions: pd.DataFrame) -> AlsBaseline:
        from implicit.cpu.als import AlternatingLeastSquares

        self.users_ = pd.Index(sorted(interactions["user_id"].unique()))
        self.items_ = pd.Index(sorted(interactions["item_id"].unique()))
        rows = self.users_.get_indexer(interactions["user_id"])
        cols = self.items_.get_indexer(interactions["item_id"])
        matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(self.users_), len(self.items_)),
        )
        matrix.data[:] = 1.0
        self.matrix_ = matrix.tocsr()
        self.model_ = AlternatingLeastSquares(
            factors=self.factors,
            iterations=self.iterations,
            regularization=self.regularization,
            alpha=self.alpha,
            random_state=self.seed,
            num_threads=1,
        )
        self.model_.fit(self.matrix_, show_progress=False)
        return self

    def recommend(self, user: str, n: int) -> list[str]:
        """The top ``n`` unseen items of a user it was fitted on ([] otherwise)."""
        if user not in self.users_:
            return []
        row = int(self.users_.get_loc(user))
        ids, _ = self.model_.recommend(row, self.matrix_[row], N=n, filter_already_liked_items=True)
        return [str(self.items_[i]) for i in ids]
