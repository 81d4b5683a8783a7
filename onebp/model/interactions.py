"""Per-user item sets on the training device, as CSR tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def csr_from_pairs(pairs: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user sorted item lists as CSR ``(indptr, indices)`` (numpy int64)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    users, items = pairs[order, 0], pairs[order, 1]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, items


@dataclass
class UserItems:
    """Per-user sorted item lists: items of user ``u`` are ``indices[indptr[u]:indptr[u+1]]``."""

    indptr: torch.Tensor  # (n_users + 1,) int64
    indices: torch.Tensor  # (nnz,) int64, sorted within each user
    n_users: int
    n_items: int

    @classmethod
    def from_pairs(
        cls, pairs: np.ndarray, n_users: int, n_items: int, device: torch.device | str = "cpu"
    ) -> UserItems:
        indptr, indices = csr_from_pairs(pairs, n_users)
        return cls(
            torch.as_tensor(indptr, device=device),
            torch.as_tensor(indices, device=device),
            n_users,
            n_items,
        )

    def degrees(self) -> torch.Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    def user_of_entry(self) -> torch.Tensor:
        """The user id of every stored entry, aligned with ``indices``."""
        return torch.repeat_interleave(
            torch.arange(self.n_users, device=self.indices.device), self.degrees()
        )

    def rows(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flattened entries of the given users: ``(position_in_users, item)`` tensors."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        row = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        offsets = torch.cumsum(lengths, 0) - lengths
        pos = torch.arange(int(lengths.sum()), device=users.device) - offsets[row] + starts[row]
        return row, self.indices[pos]

    def to(self, device: torch.device | str) -> UserItems:
        return UserItems(self.indptr.to(device), self.indices.to(device), self.n_users, self.n_items)
