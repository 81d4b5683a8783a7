"""Losses over a batch of (user, positive, negatives).

A loss is called as ``loss(user_vecs (B,d), pos_vecs (B,d), neg_vecs (B,N,d) | None)`` and returns
a scalar. ``neg_vecs is None`` means in-batch negatives: the other rows' positives. A loss that
is a function of the dot-product scores only may also provide ``value_and_grad(scores)`` for
scores of shape (1+N, B) — row 0 the positives, row j the j-th negatives (this layout makes the
per-row reductions contiguous, which is several times faster on CPU): the trainer's fused path
then writes the embedding gradients by hand (no autograd graph).
New losses (DirectAU, SimpleX's CCL …) only need ``__call__``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dot_scores(user_vecs: torch.Tensor, pos_vecs: torch.Tensor,
               neg_vecs: torch.Tensor | None) -> torch.Tensor:
    """(B, 1+N) scores [s⁺, s⁻...]; with in-batch negatives (B, B) with the positive on the diagonal."""
    if neg_vecs is None:
        return user_vecs @ pos_vecs.T
    items = torch.cat([pos_vecs[:, None, :], neg_vecs], dim=1)
    return torch.bmm(items, user_vecs[:, :, None]).squeeze(2)


class InfoNCE:
    """Sampled softmax: ``mean_b −log(exp(s⁺/τ) / (exp(s⁺/τ) + Σ_j exp(s⁻_j/τ)))``."""

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def __call__(self, user_vecs, pos_vecs, neg_vecs):
        scores = dot_scores(user_vecs, pos_vecs, neg_vecs) / self.temperature
        if neg_vecs is None:
            target = torch.arange(len(scores), device=scores.device)
        else:
            target = torch.zeros(len(scores), dtype=torch.int64, device=scores.device)
        return F.cross_entropy(scores, target)

    def value_and_grad(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and dLoss/dscores for (1+N, B) scores: ``(softmax − onehot₀) / (B·τ)``."""
        z = scores / self.temperature if self.temperature != 1.0 else scores
        log_p = torch.log_softmax(z, dim=0)
        loss = -log_p[0].mean()
        grad = log_p.exp_()  # log_p is not needed after the loss (already reduced)
        grad[0] -= 1.0
        grad *= 1.0 / (scores.shape[1] * self.temperature)
        return loss, grad


class BPR:
    """Bayesian personalised ranking (Rendle et al., 2009): ``mean_{b,j} softplus(s⁻_j − s⁺)``."""

    def __call__(self, user_vecs, pos_vecs, neg_vecs):
        scores = dot_scores(user_vecs, pos_vecs, neg_vecs)
        if neg_vecs is None:
            diff = scores - scores.diagonal()[:, None]
            off = ~torch.eye(len(scores), dtype=torch.bool, device=scores.device)
            return F.softplus(diff[off]).mean()
        return F.softplus(scores[:, 1:] - scores[:, :1]).mean()

    def value_and_grad(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For (1+N, B) scores: d/ds⁻_j = σ(s⁻_j − s⁺)/(B·N), d/ds⁺ = −Σ_j of those."""
        diff = scores[1:] - scores[:1]
        loss = F.softplus(diff).mean()
        g = torch.sigmoid(diff) / diff.numel()
        return loss, torch.cat([-g.sum(dim=0, keepdim=True), g])
