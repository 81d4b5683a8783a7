"""Encoders: map user and item ids to vectors; the score is their dot product.

Every encoder keeps its *user table* (the raw |U|×d parameter the OneBP moving aggregation writes
into) separate from whatever produces item vectors, so an update strategy can train the two towers
differently without knowing the encoder's internals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def xavier_table(n: int, dim: int, generator: torch.Generator, device: torch.device) -> nn.Parameter:
    """A |n|×dim table with Xavier-normal init (std = sqrt(2 / (n + dim))), as the official code."""
    weight = torch.empty(n, dim, device=device)
    nn.init.xavier_normal_(weight, generator=generator)
    return nn.Parameter(weight)


def init_table(n: int, dim: int, generator: torch.Generator, device: torch.device,
               std: float | None = None) -> nn.Parameter:
    """A |n|×dim table: N(0, std²) when ``std`` is given (LightGCN's official code uses 0.1, SimpleX's
    1e-4), else Xavier-normal (:func:`xavier_table`, OneBP's official init)."""
    if std is None:
        return xavier_table(n, dim, generator, device)
    weight = torch.empty(n, dim, device=device)
    nn.init.normal_(weight, std=std, generator=generator)
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
    with warnings.catch_warnings():  # "sparse CSR is in beta", "invariant checks disabled"
        warnings.simplefilter("ignore")
        adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n)).coalesce()
        return adj.to_sparse_csr().to(device)


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A`` (no gradient to A): the backward is ``A @ grad``.

    torch's own backward of a CSR sparse × dense product is ~8× slower on CPU (it also builds the
    gradient structure for A); the normalised LightGCN adjacency is symmetric, so ``Aᵀ = A``.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adj, grad)


class _SparseMM(torch.autograd.Function):
    """``A @ x`` for a constant sparse ``A`` given with its transpose (backward ``Aᵀ @ grad``)."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj_t = adj_t
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, torch.sparse.mm(ctx.adj_t, grad)


def history_matrix(train, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-normalised |U|×|I| train matrix (each user's row sums to 1) and its transpose, CSR."""
    users = train.user_of_entry()
    deg = train.degrees().clamp(min=1).to(torch.float32)
    idx = torch.stack([users, train.indices]).cpu()
    vals = (1.0 / deg)[users].cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.sparse_coo_tensor(idx, vals, (train.n_users, train.n_items)).coalesce()
        mt = torch.sparse_coo_tensor(idx.flip(0), vals, (train.n_items, train.n_users)).coalesce()
        return m.to_sparse_csr().to(device), mt.to_sparse_csr().to(device)


class LightGCN(nn.Module):
    """LightGCN (He et al., SIGIR 2020): K propagation layers over the normalised train graph,
    final vectors = mean of the layer outputs (layer 0 included).

    Propagation runs once per batch (``begin_batch``) and the batch reads rows of the result, so
    gradients reach every base embedding through the graph, as in the original.
    """

    plain_tables = False

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator,
                 device: torch.device, graph: GraphSpec, n_layers: int = 3,
                 init_std: float | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.user_table = init_table(n_users, dim, generator, device, init_std)
        self.item_table = init_table(n_items, dim, generator, device, init_std)
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
            x = _SymmetricSpMM.apply(self.adj, x)
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


class HistoryAggregation(nn.Module):
    """SimpleX's user tower (Mao et al., CIKM 2021): ``p_u = g·e_u + (1−g)·V·mean_{i∈H(u)} e_i``.

    ``H(u)`` is u's full train history (the official code truncates it to a maximum length and
    pads; here every train item counts). ``V`` is a learnt d×d linear map (``linear=False``: the
    identity). Item vectors are the plain item table rows.
    """

    plain_tables = False

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator,
                 device: torch.device, train, g: float = 0.5, linear: bool = True,
                 init_std: float | None = None) -> None:
        super().__init__()
        self.user_table = init_table(n_users, dim, generator, device, init_std)
        self.item_table = init_table(n_items, dim, generator, device, init_std)
        self.g = g
        self.history, self.history_t = history_matrix(train, device)
        self.V = xavier_table(dim, dim, generator, device) if linear else None
        self._cache: torch.Tensor | None = None

    def item_parameters(self) -> list[nn.Parameter]:
        return [self.item_table] + ([self.V] if self.V is not None else [])

    def user_parameters(self) -> list[nn.Parameter]:
        return [self.user_table]

    def history_means(self) -> torch.Tensor:
        """Every user's mean history item vector (one sparse product: cheaper than per-row gathers)."""
        return _SparseMM.apply(self.history, self.history_t, self.item_table)

    def _combine(self, users: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.V is not None:
            h = h @ self.V
        return self.g * self.user_table[users] + (1.0 - self.g) * h

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        h = self._cache if self._cache is not None else self.history_means()
        return self._combine(users, h[users])

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_table[items]

    def all_user_vectors(self) -> torch.Tensor:
        users = torch.arange(self.user_table.shape[0], device=self.user_table.device)
        return self._combine(users, self.history_means())

    def all_item_vectors(self) -> torch.Tensor:
        return self.item_table

    def begin_batch(self) -> None:
        self._cache = self.history_means()


class BootstrapMF(nn.Module):
    """BUIR's encoders (Lee et al., SIGIR 2021): online and target MF tables plus a linear predictor.

    The target starts as a copy of the online tables and never gets a gradient; it follows the
    online tables by a momentum update (``onebp.model.momentum.MomentumTarget``). Scoring uses the online
    side only: ``s(u, i) = q(e_u)·e_i + e_u·q(e_i)`` — i.e. user vector ``[q(e_u), e_u]`` dotted with
    item vector ``[e_i, q(e_i)]``, so the generic dot-product evaluation applies.

    Deviation: the official BUIR_ID initialises the predictor with a Xavier-normal weight and an
    N(0, 1) bias; next to Xavier-scaled tables (std ≈ 0.04) that bias dominates q(·) at the start,
    and on ML-100K (dim 32) it reached only Recall@20 0.083 vs 0.229 with torch's default
    ``nn.Linear`` init (uniform ±1/√d), which we therefore use.
    """

    plain_tables = False

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator,
                 device: torch.device) -> None:
        super().__init__()
        self.user_table = xavier_table(n_users, dim, generator, device)
        self.item_table = xavier_table(n_items, dim, generator, device)
        self.predictor = nn.Linear(dim, dim).to(device)
        with torch.no_grad():  # nn.Linear's default init, drawn from our generator (see below)
            bound = 1.0 / dim**0.5
            self.predictor.weight.uniform_(-bound, bound, generator=generator)
            self.predictor.bias.uniform_(-bound, bound, generator=generator)
        self.target_user = nn.Parameter(self.user_table.detach().clone(), requires_grad=False)
        self.target_item = nn.Parameter(self.item_table.detach().clone(), requires_grad=False)

    def online_parameters(self) -> list[nn.Parameter]:
        return [self.user_table, self.item_table]

    def target_parameters(self) -> list[nn.Parameter]:
        return [self.target_user, self.target_item]

    def item_parameters(self) -> list[nn.Parameter]:
        return [self.item_table, *self.predictor.parameters()]

    def user_parameters(self) -> list[nn.Parameter]:
        return [self.user_table]

    def all_user_vectors(self) -> torch.Tensor:
        return torch.cat([self.predictor(self.user_table), self.user_table], dim=1)

    def all_item_vectors(self) -> torch.Tensor:
        return torch.cat([self.item_table, self.predictor(self.item_table)], dim=1)

    def begin_batch(self) -> None:
        pass
