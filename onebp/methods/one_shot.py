"""Non-neural sanity floors, fitted in one shot: most-popular and EASE.

Both are ``OneShotModel``s (``onebp.model.contracts``): the trainer calls ``fit()`` once, with no
epochs and no sampler; scoring needs no preparation (the contract's no-op ``prepare_scoring``), and
the best-model copy is the whole state (its default ``scoring_weights``).

* ``MostPop``: every user gets the items ranked by their number of train interactions.
* ``EASE`` (Steck, WWW 2019): item-item weights ``B = I − P·diag(1/diag(P))`` with
  ``P = (XᵀX + λI)⁻¹`` (closed form, zero diagonal); ``score(u) = X_u·B``. Needs a dense
  |I|×|I| matrix: fine for MovieLens, ≈ 6.7 GB in float32 for Gowalla's 40,981 items.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from onebp.errors import UserError
from onebp.model.contracts import OneShotModel
from onebp.model.interactions import UserItems


def dense_rows(train: UserItems, users: torch.Tensor) -> torch.Tensor:
    """The users' rows of the binary train matrix, (len(users), n_items) float32."""
    row, item = train.rows(users)
    x = torch.zeros(len(users), train.n_items, device=users.device)
    x[row, item] = 1.0
    return x


class MostPop(OneShotModel):
    """Every user gets the items ranked by their number of train interactions."""

    def __init__(self, train: UserItems) -> None:
        self.train = train
        self.popularity = torch.zeros(train.n_items, device=train.indices.device)

    def fit(self) -> None:
        self.popularity = torch.bincount(self.train.indices, minlength=self.train.n_items).to(torch.float32)

    @torch.no_grad()
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.popularity[None, :].expand(len(users), -1)

    def state_dict(self) -> dict[str, Any]:
        return {"popularity": self.popularity.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.popularity = state["popularity"].to(self.popularity.device)


#: bytes per |I|² entry at EASE's peak: B (float32) + XᵀX, its inverse and the new B (float64)
EASE_BYTES_PER_ENTRY = 4 + 8 + 8 + 8


def ease_memory_bytes(n_items: int) -> int:
    return EASE_BYTES_PER_ENTRY * n_items * n_items


def memory_budget_bytes(device: torch.device) -> tuple[int, str]:
    """What a job may allocate: the free memory of a GPU; on the CPU the job's configured memory
    (``ONEBP_MEMORY_MB``, the workflow sets it from the job's ``mem_mb``), else the available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0]), f"free memory of {device}"
    env = os.environ.get("ONEBP_MEMORY_MB")
    if env:
        return int(float(env) * 2**20), f"the job's configured memory (mem_mb {env})"
    import psutil

    return int(psutil.virtual_memory().available), "this machine's available memory"


def check_ease_fits(n_items: int, budget: int, where: str) -> None:
    """Refuse, before allocating, an |I|×|I| model that cannot fit ``budget`` bytes."""
    need = ease_memory_bytes(n_items)
    if need > budget:
        raise UserError(
            f"ease: {n_items} items need about {need / 2**30:.1f} GiB ({EASE_BYTES_PER_ENTRY} bytes per "
            f"entry of the |I|x|I| matrices), more than {where} ({budget / 2**30:.1f} GiB); give its "
            "jobs more memory (config: method_resources.ease.<dataset>.mem_mb) or leave ease out there"
        )


class EASE(OneShotModel):
    """Closed-form item-item weights (module docstring); ``lam`` is λ."""

    def __init__(self, train: UserItems, lam: float) -> None:
        self.train, self.lam = train, lam
        device = train.indices.device
        check_ease_fits(train.n_items, *memory_budget_bytes(device))
        self.B = torch.zeros(train.n_items, train.n_items, device=device)

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

    @torch.no_grad()
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return dense_rows(self.train, users) @ self.B

    def state_dict(self) -> dict[str, Any]:
        return {"B": self.B.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.B = state["B"].to(self.B.device)
