"""The report a person reads: `build_report(STUDY)` writes tables and figures like the paper's.

* `study`    - read a study folder: records, the law table, observations, study.json
* `analysis` - the fits of a study, computed once (`Analysis.fits(kind, form, by)`)
* `tables`   - the table registry (`TABLES`): study, Tables 1-4 and 6, paper, planner
* `figures`  - the figure registry (`FIGURES`): Figures 1-8 and 10 as matplotlib figures
* `render`   - CSV, LaTeX, Markdown and HTML writers
* `build`    - `build_report(study, out=None) -> Report`

No torch is imported here; matplotlib draws through Agg.
"""

from complaw.report.analysis import Analysis, FitSet
from complaw.report.build import Report, build_report, default_out
from complaw.report.figures import FIGURES, FigureSpec
from complaw.report.study import Skip, Study, load_study
from complaw.report.tables import TABLES, Table, TableSpec

__all__ = [
    "FIGURES",
    "TABLES",
    "Analysis",
    "FigureSpec",
    "FitSet",
    "Report",
    "Skip",
    "Study",
    "Table",
    "TableSpec",
    "build_report",
    "default_out",
    "load_study",
]
