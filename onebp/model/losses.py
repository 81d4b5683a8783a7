"""Losses over a batch of (user, positive, negatives).

A loss is called as ``loss(user_vecs (B,d), pos_vecs (B,d), neg_vecs (B,N,d) | None)`` and returns
a scalar (``onebp.model.contracts.Loss``). ``neg_vecs is None`` means in-batch negatives: the other
rows' positives. Two optional capabilities, each a protocol the update strategies check once with
``isinstance`` (``onebp.model.contracts``):

* ``value_and_grad(scores)`` (``ScoresLoss``), for a loss that is a function of the dot-product
  scores only, with scores of shape (1+N, B) — row 0 the positives, row j the j-th negatives (this
  layout makes the per-row reductions contiguous, which is several times faster on CPU): the fused
  path then writes the embedding gradients by hand (no autograd graph);
* ``with_all_items(user_vecs, pos_vecs, item_vecs, neg_ids)`` (``AllItemsLoss``): the same loss from
  all item vectors, cheaper for many negatives over a small catalogue.

New losses (DirectAU, SimpleX's CCL …) only need ``__call__``. ``BootstrapLoss`` is BUIR's own
(online predictions against targets, ``onebp.model.momentum.MomentumTarget``), not a ``Loss``.
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


class DirectAU:
    """Alignment + uniformity (Wang et al., KDD 2022) on L2-normalised vectors, in-batch only.

    ``align = mean_b ‖ũ_b − ĩ_b‖²`` and ``uniform(x) = log mean_{a<b} exp(−t‖x̃_a − x̃_b‖²)`` (t = 2)
    over the batch's users and over its positive items; ``L = align + γ·(uniform(U) + uniform(I))/2``.
    No negatives are used (``neg_vecs`` is ignored). With OneBP the user vectors carry no gradient,
    so the user uniformity term is a constant: only alignment and item uniformity train anything.
    """

    def __init__(self, gamma: float = 1.0, t: float = 2.0) -> None:
        self.gamma, self.t = gamma, t

    @staticmethod
    def alignment(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).pow(2).sum(dim=1).mean()

    def uniformity(self, x: torch.Tensor) -> torch.Tensor:
        """``log mean_{a<b} exp(−t‖x_a − x_b‖²)`` for unit rows, from the Gram matrix
        (``‖x_a − x_b‖² = 2 − 2x_a·x_b``): one GEMM, several times faster than ``torch.pdist`` and
        its backward on CPU; the mean over a<b equals the mean over a≠b (symmetry)."""
        n = len(x)
        e = (2.0 - 2.0 * (x @ x.T)).clamp(min=0.0).mul(-self.t).exp()
        return ((e.sum() - e.diagonal().sum()) / (n * (n - 1))).log()

    def __call__(self, user_vecs, pos_vecs, neg_vecs=None):
        u = F.normalize(user_vecs, dim=-1)
        i = F.normalize(pos_vecs, dim=-1)
        return self.alignment(u, i) + self.gamma * (self.uniformity(u) + self.uniformity(i)) / 2


class CosineContrastive:
    """SimpleX's cosine contrastive loss (CCL; Mao et al., CIKM 2021).

    ``L = mean_b [ (1 − cos(u, i⁺)) + w · mean_j max(0, cos(u, i⁻_j) − m) ]`` with margin m and
    negative weight w (the official code averages over the negatives and multiplies by w).
    """

    def __init__(self, margin: float = 0.9, negative_weight: float = 150.0) -> None:
        self.margin, self.negative_weight = margin, negative_weight

    def __call__(self, user_vecs, pos_vecs, neg_vecs):
        u = F.normalize(user_vecs, dim=-1)
        p = F.normalize(pos_vecs, dim=-1)
        pos_loss = 1.0 - (u * p).sum(dim=1)
        if neg_vecs is None:  # in-batch: the other rows' positives
            cos = u @ p.T
            off = ~torch.eye(len(cos), dtype=torch.bool, device=cos.device)
            neg = torch.relu(cos - self.margin).masked_fill(~off, 0.0).sum(1) / max(len(cos) - 1, 1)
        else:
            n = F.normalize(neg_vecs, dim=-1)
            cos = torch.bmm(n, u[:, :, None]).squeeze(2)
            neg = torch.relu(cos - self.margin).mean(dim=1)
        return (pos_loss + self.negative_weight * neg).mean()

    def with_all_items(self, user_vecs, pos_vecs, item_vecs, neg_ids):
        """The same loss from all item vectors (|I|, d) and negative ids (B, N): for small catalogues
        one (B, |I|) cosine matrix and a gather beat gathering (B, N, d) vectors."""
        u = F.normalize(user_vecs, dim=-1)
        pos_loss = 1.0 - (u * F.normalize(pos_vecs, dim=-1)).sum(dim=1)
        cos = torch.gather(u @ F.normalize(item_vecs, dim=-1).T, 1, neg_ids)
        neg = torch.relu(cos - self.margin).mean(dim=1)
        return (pos_loss + self.negative_weight * neg).mean()


class BootstrapLoss:
    """BUIR's loss: ``mean_b [(2 − 2cos(q(u), ξ_i)) + (2 − 2cos(q(i), ξ_u))]`` (online predictions
    against the other side's target vectors; see ``onebp.model.momentum.MomentumTarget``)."""

    def __call__(self, u_pred, u_target, i_pred, i_target):
        cos_ui = (F.normalize(u_pred, dim=-1) * F.normalize(i_target, dim=-1)).sum(-1)
        cos_iu = (F.normalize(i_pred, dim=-1) * F.normalize(u_target, dim=-1)).sum(-1)
        return (4.0 - 2.0 * cos_ui - 2.0 * cos_iu).mean()
