"""Table writers: LaTeX escaping, Markdown cells."""

from __future__ import annotations

import pandas as pd

from complaw.report.render import latex_escape, to_latex, to_markdown
from complaw.report.tables import Table


def test_latex_escapes_specials_and_greek():
    assert latex_escape("fit:eq1:loss:model=a_b & 50% #1 {x} ~ ^") == (
        r"fit:eq1:loss:model=a\_b \& 50\% \#1 \{x\} \textasciitilde{} \textasciicircum{}"
    )
    assert latex_escape("α [95% CI] ≥ σ·L0^α") == (
        r"$\alpha$ [95\% CI] $\geq$ $\sigma$$\cdot$L0\textasciicircum{}$\alpha$"
    )
    assert latex_escape(r"a\b") == r"a\textbackslash{}b"


def test_latex_table_and_markdown():
    df = pd.DataFrame({"model": ["m_1", "m|2"], "β [95% CI]": ["-1.2 [-1.3, -1.1]", "–"]})
    tex = to_latex(Table("t", "Title", "Caption_x.", df, df))
    assert r"\begin{tabular}{ll}" in tex and r"m\_1 & -1.2 [-1.3, -1.1] \\" in tex
    assert r"$\beta$ [95\% CI]" in tex and r"\caption{Title. Caption\_x.}" in tex
    assert tex.count(r"\\") == 3  # header and two rows
    md = to_markdown(df).splitlines()
    assert md[0] == "| model | β [95% CI] |" and md[1] == "|---|---|"
    assert md[3] == r"| m\|2 | – |"
