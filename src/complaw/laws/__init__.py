"""Compression laws: fit them on records, test them, and use them to decide (no torch).

* `table`     - the law table's columns and validation (`validate`, `read_table`)
* `forms`     - the registry of forms: eq1, eq2, eq3, runtime, additive (`FORMS`, `get_form`)
* `law`       - `Law`: a form with coefficients that predicts L (with a CI when fitted)
* `fit`       - `fit(df, form, by=[...])`, statistics, bootstrap, leave-one-group-out, `compare`
* `theory`    - `critical_ratio`, `min_rft` (Theorem 3.1, Corollary 3.2, and their loss variant)
* `published` - the paper's laws by name (`get_law("paper:llama-3-8b:extrinsic")`)
* `planner`   - `plan(load_plan("plan.yaml"))`: ranked feasible (model, r, D)
"""

from complaw.laws.fit import FitResult, Fits, compare, fit, leave_one_group_out
from complaw.laws.forms import FORMS, Form, get_form
from complaw.laws.law import Law, Prediction
from complaw.laws.planner import Plan, PlanSpec, load_plan, parse_plan, plan
from complaw.laws.published import get_law, published_law, published_laws
from complaw.laws.table import COLUMNS, METRICS, read_table, validate
from complaw.laws.theory import check_feasible, critical_ratio, min_rft

__all__ = [
    "COLUMNS",
    "FORMS",
    "METRICS",
    "FitResult",
    "Fits",
    "Form",
    "Law",
    "Plan",
    "PlanSpec",
    "Prediction",
    "check_feasible",
    "compare",
    "critical_ratio",
    "fit",
    "get_form",
    "get_law",
    "leave_one_group_out",
    "load_plan",
    "min_rft",
    "parse_plan",
    "plan",
    "published_law",
    "published_laws",
    "read_table",
    "validate",
]
