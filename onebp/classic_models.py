"""Non-neural sanity floors, fitted in one shot (``iterative = False``): most-popular and EASE.

* ``MostPop``: every user gets the items ranked by their number of train interactions.
* ``EASE`` (Steck, WWW 2019): item-item weights ``B = I − P·diag(1/diag(P))`` with
  ``P = (XᵀX + λI)⁻¹`` (closed form, zero diagonal); ``score(u) = X_u·B``. Needs a dense
  |I|×|I| matrix: fine for MovieLens, ≈ 6.7 GB in float32 for Gowalla's 40,981 items.
"""

from __future__ import annotations

from typing import Any

import torch

from onebp.interactions import UserItems


def dense_rows(train: UserItems, users: torch.Tensor) -> torch.Tensor:
    """The users' rows of the binary train matrix, (len(users), n_items) float32."""
    row, item = train.rows(users)
    x = torch.zeros(len(users), train.n_items, device=users.device)
    x[row, item] = 1.0
    return x


class MostPop:
    iterative = False
    sampler = None

    def __init__(self, train: UserItems) -> None:
        self.train = train
        self.popularity = torch.zeros(train.n_items, device=train.indices.device)

    def fit(self) -> None:
        self.popularity = torch.bincount(self.train.indices, minlength=self.train.n_items).to(torch.float32)

    def prepare_scoring(self) -> None:
        pass

    @torch.no_grad()
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.popularity[None, :].expand(len(users), -1)

    def state_dict(self) -> dict[str, Any]:
        return {"popularity": self.popularity.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.popularity = state["popularity"].to(self.popularity.device)


class EASE:
    iterative = False
    sampler = None

    def __init__(self, train: UserItems, lam: float) -> None:
        self.train, self.lam = train, lam
        self.B = torch.zeros(train.n_items, train.n_items, device=train.indices.device)

    @torch.no_grad()
    def fit(self) -> None:
        n_users = self.train.n_users
        users = torch.arange(n_users, device=self.B.device)
        gram = torch.zeros_like(self.B, dtype=torch.float64)
        for start in range(0, n_users, 4096):  # XᵀX in user chunks (no dense |U|×|I| at once)
            x = dense_rows(self.train, users[start : start + 4096]).to(torch.float64)
            gram += x.T @ x
        gram.diagonal().add_(self.lam)
        p = torch.linalg.inv(gram)
        b = -p / p.diagonal()[None, :]
        b.diagonal().zero_()
        self.B = b.to(torch.float32)

    def prepare_scoring(self) -> None:
        pass

    @torch.no_grad()
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return dense_rows(self.train, users) @ self.B

    def state_dict(self) -> dict[str, Any]:
        return {"B": self.B.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.B = state["B"].to(self.B.device)
