"""The two-tower retrieval model: a user tower and an item tower whose dot product scores
a pair, trained with in-batch negatives (PyTorch).

The user tower sums embeddings of the user's id and demographic categories; the item
tower those of the item's id, tags (mean) and year bucket; each ends in a small MLP and a
unit-length vector. Ids are dropped out during training (replaced by "unknown") so the
content path alone also places a user or item well: a new item enters the index through
its content, a user the model never saw through their demographics.

The weights are kept as NumPy arrays (saved without pickle) and loaded back into the same
module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

__all__ = ["TowerConfig", "TwoTower", "train_two_tower"]


@dataclass(frozen=True)
class TowerConfig:
    """Training settings (seeded: the same data and config give the same weights)."""

    dim: int = 64
    epochs: int = 8
    batch_size: int = 256
    lr: float = 5e-3
    temperature: float = 0.07
    id_dropout: float = 0.15
    weight_decay: float = 1e-6
    seed: int = 0
    threads: int = 1  # one BLAS pool per process (BENCHMARKING.md)


class _Tower(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = nn.functional.normalize(x + self.mlp(x), dim=-1)
        return out


class TwoTower(nn.Module):
    """User and item towers over ids and content features (see the module's docstring)."""

    def __init__(self, sizes: Mapping[str, Any], dim: int) -> None:
        super().__init__()
        self.sizes = dict(sizes)
        self.dim = dim
        self.user_id = nn.Embedding(sizes["users"], dim)
        self.user_features = nn.ModuleList(nn.Embedding(n, dim) for n in sizes["categories"])
        self.item_id = nn.Embedding(sizes["items"], dim)
        self.tags = nn.EmbeddingBag(sizes["tags"], dim, mode="sum", padding_idx=0)
        self.year = nn.Embedding(sizes["years"], dim)
        self.user_tower = _Tower(dim)
        self.item_tower = _Tower(dim)
        for emb in (self.user_id, self.item_id, self.year, *self.user_features):
            nn.init.normal_(emb.weight, std=0.05)
        nn.init.normal_(self.tags.weight, std=0.05)

    def users(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = self.user_id(ids)
        for j, emb in enumerate(self.user_features):
            x = x + emb(features[:, j])
        out: torch.Tensor = self.user_tower(x)
        return out

    def items(self, ids: torch.Tensor, tags: torch.Tensor, years: torch.Tensor) -> torch.Tensor:
        count = (tags > 0).sum(dim=1, keepdim=True).clamp(min=1)
        x = self.item_id(ids) + self.tags(tags) / count + self.year(years)
        out: torch.Tensor = self.item_tower(x)
        return out

    def weights(self) -> dict[str, NDArray[np.float32]]:
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    @classmethod
    def from_weights(
        cls, sizes: Mapping[str, Any], dim: int, weights: Mapping[str, NDArray[Any]]
    ) -> TwoTower:
        model = cls(sizes, dim)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
        model.eval()
        return model

    @torch.no_grad()
    def user_vectors(self, ids: NDArray[np.int64], features: NDArray[np.int64]) -> NDArray[Any]:
        self.eval()
        return self.users(torch.from_numpy(ids), torch.from_numpy(features)).numpy()

    @torch.no_grad()
    def item_vectors(
        self, ids: NDArray[np.int64], tags: NDArray[np.int64], years: NDArray[np.int64]
    ) -> NDArray[Any]:
        self.eval()
        return self.items(
            torch.from_numpy(ids), torch.from_numpy(tags), torch.from_numpy(years)
        ).numpy()


def train_two_tower(
    sizes: Mapping[str, Any],
    pairs: Mapping[str, NDArray[np.int64]],
    config: TowerConfig = TowerConfig(),
) -> TwoTower:
    """Fit on interaction ``pairs`` (``user``, ``user_features``, ``item``, ``tags``,
    ``years``: one row per interaction) with in-batch negatives: each user's item is the
    positive, the batch's other items the negatives (a logQ correction removes the
    popularity bias of in-batch sampling; duplicates of the positive are masked)."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = TwoTower(sizes, config.dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(pairs["item"])
    frequency = np.bincount(pairs["item"], minlength=sizes["items"]).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(frequency, 1.0) / n).astype(np.float32))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in pairs.items()}
    model.train()
    for _ in range(config.epochs):
        order = torch.from_numpy(rng.permutation(n))
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            if len(batch) < 2:
                continue
            users, items = tensors["user"][batch], tensors["item"][batch]
            if config.id_dropout > 0:
                users = users * (torch.rand(len(batch)) >= config.id_dropout)
                items_in = items * (torch.rand(len(batch)) >= config.id_dropout)
            else:
                items_in = items
            u = model.users(users, tensors["user_features"][batch])
            v = model.items(items_in, tensors["tags"][batch], tensors["years"][batch])
            logits = u @ v.T / config.temperature - log_q[items][None, :]
            same = items[:, None] == items[None, :]
            logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), -1e9)
            loss = nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    model.eval()
    return model
