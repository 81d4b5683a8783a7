"""The baselines' own settings: defaults from their official code, their params reach the model."""

from __future__ import annotations

from onebp.model.losses import DirectAU


def _resolved(method: str, dataset: str = "any", **overrides):
    from onebp.config import resolve_config
    from onebp.methods.registry import get_method

    m = get_method(method)
    return resolve_config(method, m.params, m.defaults, dataset, overrides)


def test_baseline_defaults_follow_their_official_code():
    lgc = _resolved("lightgcn")  # gusye1234/LightGCN-PyTorch: N(0, 0.1) tables, decay 1e-4, batch 2048
    assert (lgc.params["init_std"], lgc.params["ego_l2"], lgc.l2, lgc.lr, lgc.batch_size, lgc.dim) == (
        0.1, 1e-4, 0.0, 1e-3, 2048, 64)
    buir = _resolved("buir")  # BUIR author code: Adam lr 1e-3, weight decay 1e-4, τ 0.995, batch 1024
    assert (buir.l2, buir.lr, buir.params["tau"], buir.batch_size, buir.dim) == (1e-4, 1e-3, 0.995, 1024, 250)
    dau = _resolved("directau")  # DirectAU README/RecBole: lr 1e-3, batch 256, dim 64, in-batch only
    assert (dau.lr, dau.batch_size, dau.dim, dau.n_negatives) == (1e-3, 256, 64, 0)


def test_onebp_directau_gamma_is_a_setting():
    from onebp.methods.conformance import battery_split, make_trainer
    from onebp.methods.registry import get_method

    assert _resolved("onebp-directau", gamma="0.3").params["gamma"] == 0.3
    assert _resolved("onebp-directau").params["gamma"] == 1.0
    trainer = make_trainer(get_method("onebp-directau"), battery_split(), gamma=0.3)
    loss = trainer.model.strategy.loss
    assert isinstance(loss, DirectAU) and loss.gamma == 0.3
