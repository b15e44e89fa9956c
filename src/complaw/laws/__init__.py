"""Compression laws: fit them on records, test them, and use them to decide (no torch).

* `table`     - the law table's columns and validation (`validate`, `read_table`)
* `forms`     - the registry of forms, as data: the paper's eq1-3, runtime and additive (OLS),
                the feasible degradation, onset, plateau and retention forms, two-step (`FORMS`);
                each models metric families (`complaw.laws.metrics`: loss, accuracy, runtime)
* `metrics`   - the registry of metrics (`METRICS`): stage, higher-is-better, default form,
                scale, axis label, unit
* `law`       - `Law`: a form with coefficients that predicts L (with a CI when fitted)
* `fit`       - estimating one law (`fit_group`): OLS or robust least squares, statistics,
                bootstrap, coefficients on a bound
* `select`    - `fit(df, form, by=[...], holdout=...)` group by group, `compare`, and which law
                may be called best (held-out evidence): `best_form`, `credible_best`
* `holdout`   - held-out error by split (r:X, D, a column, kfold:K), accuracy errors in points,
                the measurement noise floor (from L_se) and the seed noise floor
* `link`      - links from a task's loss to its accuracy (`LINKS`: sigmoid), `fit_link`
* `twostep`   - the two-step accuracy law: (r, D) -> task loss (a loss form) -> accuracy (a
                link), registered as the form ``two-step``
* `theory`    - `critical_ratio`, `min_rft` (Theorem 3.1, Corollary 3.2, and their loss variant)
* `published` - the paper's laws by name (`get_law("paper:llama-3-8b:extrinsic")`)
* `planner`   - `plan(load_plan("plan.yaml"))`: ranked feasible (model, r, D)
"""

from complaw.laws.fit import FitResult, Fits
from complaw.laws.forms import FORMS, CurveForm, Form, LinearForm, get_form
from complaw.laws.holdout import HeldOut, HeldOutSummary, heldout_error, noise_floor
from complaw.laws.law import Law, Prediction
from complaw.laws.link import LINKS, Link, LinkFit, fit_link, get_link
from complaw.laws.metrics import METRICS, Metric, get_metric
from complaw.laws.planner import PlanResult, PlanSpec, load_plan, parse_plan, plan
from complaw.laws.published import get_law, published_law, published_laws
from complaw.laws.select import Comparison, best_form, compare, fit
from complaw.laws.table import COLUMNS, read_table, validate
from complaw.laws.theory import check_feasible, critical_ratio, min_rft
from complaw.laws.twostep import TwoStepForm, two_step

__all__ = [
    "COLUMNS",
    "Comparison",
    "FORMS",
    "LINKS",
    "METRICS",
    "FitResult",
    "Fits",
    "Form",
    "Law",
    "Link",
    "Metric",
    "LinkFit",
    "PlanResult",
    "PlanSpec",
    "Prediction",
    "check_feasible",
    "compare",
    "critical_ratio",
    "fit",
    "fit_link",
    "get_form",
    "get_law",
    "get_link",
    "get_metric",
    "heldout_error",
    "noise_floor",
    "best_form",
    "HeldOut",
    "HeldOutSummary",
    "CurveForm",
    "LinearForm",
    "TwoStepForm",
    "two_step",
    "load_plan",
    "min_rft",
    "parse_plan",
    "plan",
    "published_law",
    "published_laws",
    "read_table",
    "validate",
]
