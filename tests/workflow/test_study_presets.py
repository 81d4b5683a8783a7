"""The study presets of issue 15: what their plans hold, as the Snakefile would build them.

``config/ml-100k-study.yaml``: one budget that does not bind (12 trials ≤ 2000 epochs, patience 300,
validation every 5 epochs) for every method; sweeps with 3 seeds. ``config/ml-1m-claims.yaml``: the
claims check on ML-1M at the paper's settings, untuned. Both are loaded the way ``onebp estimate``
loads them: merged on top of config.yaml and validated by the workflow's schema.
"""

from __future__ import annotations

import sys
from pathlib import Path

from onebp.operations.estimate import load_config
from onebp.report.layout import setting_tag

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "workflow"))
import onebp_plan  # noqa: E402


def plan_of(preset: str) -> tuple[dict, onebp_plan.StudyPlan]:
    cfg = load_config(REPO, [str(REPO / "config" / preset)])
    return cfg, onebp_plan.build(cfg)


def test_the_ml_100k_study_gives_every_method_the_same_budget_that_does_not_bind() -> None:
    cfg, plan = plan_of("ml-100k-study.yaml")
    budget = plan.tuning.budget
    assert (budget.n_trials, budget.max_epochs, budget.eval_every, budget.patience_epochs) == (12, 2000, 5, 300)
    assert all(len(t.trials) == 12 for t in plan.tuning.methods.values())
    main = [r for r in plan.runs if r.setting.startswith("main-") and r.dataset == "ml-100k"]
    assert {r.seed for r in main} == {0, 1, 2, 3, 4} and {r.protocol for r in main} == {"clean", "paper"}
    for r in main:  # every method: the same cap, evaluation interval and patience
        resolved = plan.resolved(r.dataset, r.method, r.setting)
        assert (resolved["epochs"], resolved["eval_every"], resolved["patience_epochs"]) == (2000, 5, 300), r
    sweeps = [r for r in plan.runs if not r.setting.startswith("main-")]
    assert sweeps and {r.seed for r in sweeps} == {0, 1, 2}
    # The cap exceeds OneBP's ~1400-epoch peak at the paper's lr: it must not bind there.
    assert budget.max_epochs > 1400
    parity = [r for r in plan.runs if r.dataset == "ml-100k-onebp"]
    assert len(parity) == 5 and all(plan.resolved(r.dataset, r.method, r.setting)["eval_every"] == 1
                                    for r in parity)


def test_the_ml_1m_claims_check_runs_the_paper_settings_untuned() -> None:
    cfg, plan = plan_of("ml-1m-claims.yaml")
    assert plan.tuning is None
    main = [r for r in plan.runs if r.setting.startswith("main-")]
    assert {r.method for r in main} >= {"onebp", "twobp", "ease", "bpr-mf"}
    assert {(r.seed, r.protocol) for r in main} == {(s, p) for s in (0, 1, 2) for p in ("clean", "paper")}
    for m in ("onebp", "twobp"):  # the OneBP paper's ML-1M row
        setting = next(r.setting for r in main if r.method == m)
        resolved = plan.resolved("ml-1m-onebp", m, setting)
        assert (resolved["dim"], resolved["lr"], resolved["l2"], resolved["epochs"]) == (128, 1e-3, 1e-6, 200)
    ablations = {setting_tag(r.setting) for r in plan.runs if r.setting.startswith("aggregation=")}
    assert ablations == {"aggregation=none", "aggregation=item_mean", "aggregation=per_epoch_matched"}
