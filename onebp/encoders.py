"""Encoders: map user and item ids to vectors; the score is their dot product.

Every encoder keeps its *user table* (the raw |U|×d parameter the OneBP moving aggregation writes
into) separate from whatever produces item vectors, so an update strategy can train the two towers
differently without knowing the encoder's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def xavier_table(n: int, dim: int, generator: torch.Generator, device: torch.device) -> nn.Parameter:
    """A |n|×dim table with Xavier-normal init (std = sqrt(2 / (n + dim))), as the official code."""
    weight = torch.empty(n, dim, device=device)
    nn.init.xavier_normal_(weight, generator=generator)
    return nn.Parameter(weight)


class MF(nn.Module):
    """Matrix factorisation: a user table and an item table."""

    #: vectors are plain table rows, so gradients w.r.t. rows can be written by hand (fused path)
    plain_tables = True

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator,
                 device: torch.device) -> None:
        super().__init__()
        self.user_table = xavier_table(n_users, dim, generator, device)
        self.item_table = xavier_table(n_items, dim, generator, device)

    def item_parameters(self) -> list[nn.Parameter]:
        return [self.item_table]

    def user_parameters(self) -> list[nn.Parameter]:
        return [self.user_table]

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_table[users]

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_table[items]

    def all_item_vectors(self) -> torch.Tensor:
        return self.item_table

    def all_user_vectors(self) -> torch.Tensor:
        return self.user_table

    def begin_batch(self) -> None:
        """Hook for encoders that compute something once per batch (LightGCN propagation)."""


@dataclass(frozen=True)
class GraphSpec:
    n_users: int
    n_items: int
    train_pairs: np.ndarray  # (n, 2) user, item


def normalized_adjacency(graph: GraphSpec, device: torch.device) -> torch.Tensor:
    """Symmetric-normalised bipartite adjacency D^-1/2 A D^-1/2 as a sparse CSR tensor."""
    n = graph.n_users + graph.n_items
    u = torch.as_tensor(graph.train_pairs[:, 0], dtype=torch.int64)
    i = torch.as_tensor(graph.train_pairs[:, 1], dtype=torch.int64) + graph.n_users
    rows = torch.cat([u, i])
    cols = torch.cat([i, u])
    deg = torch.bincount(rows, minlength=n).to(torch.float32)
    inv_sqrt = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    values = inv_sqrt[rows] * inv_sqrt[cols]
    adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n)).coalesce()
    return adj.to_sparse_csr().to(device)


class LightGCN(nn.Module):
    """LightGCN (He et al., SIGIR 2020): K propagation layers over the normalised train graph,
    final vectors = mean of the layer outputs (layer 0 included).

    Propagation runs once per batch (``begin_batch``) and the batch reads rows of the result, so
    gradients reach every base embedding through the graph, as in the original.
    """

    plain_tables = False

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator,
                 device: torch.device, graph: GraphSpec, n_layers: int = 3) -> None:
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.user_table = xavier_table(n_users, dim, generator, device)
        self.item_table = xavier_table(n_items, dim, generator, device)
        self.adj = normalized_adjacency(graph, device)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def item_parameters(self) -> list[nn.Parameter]:
        return [self.item_table]

    def user_parameters(self) -> list[nn.Parameter]:
        return [self.user_table]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.user_table, self.item_table])
        total = x
        for _ in range(self.n_layers):
            x = torch.sparse.mm(self.adj, x)
            total = total + x
        out = total / (self.n_layers + 1)
        return out[: self.n_users], out[self.n_users :]

    def begin_batch(self) -> None:
        self._cache = self.propagate()

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            raise RuntimeError("LightGCN: call begin_batch() before reading batch vectors")
        return self._cache

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self._tables()[0][users]

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self._tables()[1][items]

    def all_user_vectors(self) -> torch.Tensor:
        return self.propagate()[0]

    def all_item_vectors(self) -> torch.Tensor:
        return self.propagate()[1]
