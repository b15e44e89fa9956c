"""Writing a report: tables as CSV, LaTeX, Markdown and HTML; the page as index.html and
index.md. Plain string building (no template engine, no optional pandas extras)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from complaw.report.tables import Table

LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
LATEX_UNICODE = {
    "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "σ": r"$\sigma$", "Δ": r"$\Delta$",
    "²": r"$^2$", "≥": r"$\geq$", "≤": r"$\leq$", "÷": r"$\div$", "·": r"$\cdot$",
    "✓": r"$\checkmark$", "–": "--", "×": r"$\times$",
}


def latex_escape(text: Any) -> str:
    out = "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return "".join(LATEX_UNICODE.get(ch, ch) for ch in out)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment of the display frame."""
    df = table.display
    lines = [
        r"\begin{table}[t]",
        r"\centering\small",
        rf"\caption{{{latex_escape(table.title)}. {latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        r"\begin{tabular}{" + "l" * len(df.columns) + "}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(v) for v in row) + r" \\" for row in df.itertuples(False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", r"\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table."""
    head = "| " + " | ".join(_md_cell(c) for c in df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(False)]
    return "\n".join([head, rule, *body])


def to_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, na_rep="–", classes="t")


@dataclass
class Section:
    """One part of the page: tables and figures, and what was left out and why."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    """("table", Table) | ("figure", (name, title, caption, file)) | ("skip", (title, why))
    | ("pre", (title, text))."""


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:2em}h3{font-size:1.05em}
table.t{border-collapse:collapse;font-size:.82em;margin:.5em 0}
table.t td,table.t th{padding:.2em .6em;border-bottom:1px solid #e4e4e4;text-align:left}
table.t th{background:#f4f4f4}
p.cap{color:#555;font-size:.9em;margin:.2em 0}p.skip{color:#8a6d00}p.err{color:#b00}
ul.notes{color:#555;font-size:.85em}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;font-size:.8em;overflow:auto}
.files{font-size:.8em}ul.toc{font-size:.9em;line-height:1.6}
"""


def _toc(i: int, section: Section) -> str:
    """One line of the table of contents: the section and links to what it shows."""
    links = []
    for kind, item in section.blocks:
        if kind == "table":
            links.append(f'<a href="#{item.name}">{html.escape(item.title.split(":")[0])}</a>')
        elif kind == "figure":
            links.append(f'<a href="#{item[0]}">{html.escape(item[1].split(":")[0])}</a>')
    return (f'<li><a href="#s{i}">{html.escape(section.title)}</a>'
            + (": " + " · ".join(links) if links else "") + "</li>")


def page_html(title: str, intro: list[str], sections: list[Section]) -> str:
    """The whole report as one HTML page (figures referenced as files beside it)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    out += [f"<p>{html.escape(line)}</p>" for line in intro]
    out.append('<nav><ul class="toc">' + "".join(_toc(i, s) for i, s in enumerate(sections))
               + "</ul></nav>")
    for i, section in enumerate(sections):
        out.append(f'<h2 id="s{i}">{html.escape(section.title)}</h2>')
        for kind, item in section.blocks:
            if kind == "table":
                t: Table = item
                out.append(f'<h3 id="{t.name}">{html.escape(t.title)}</h3>')
                out.append(f'<p class="cap">{html.escape(t.caption)}</p>')
                out.append(to_html(t.display))
                if t.notes:
                    out.append('<ul class="notes">' + "".join(
                        f"<li>{html.escape(n)}</li>" for n in t.notes) + "</ul>")
                out.append(
                    f'<p class="files">files: <a href="tables/{t.name}.csv">CSV</a> · '
                    f'<a href="tables/{t.name}.tex">LaTeX</a></p>'
                )
            elif kind == "figure":
                name, ftitle, caption, file = item
                out.append(f'<h3 id="{name}">{html.escape(ftitle)}</h3>')
                out.append(f'<img src="{file}" alt="{html.escape(ftitle)}">')
                out.append(f'<p class="cap">{html.escape(caption)}</p>')
            elif kind == "pre":
                ptitle, text = item
                out.append(f"<h3>{html.escape(ptitle)}</h3><pre>{html.escape(text)}</pre>")
            else:
                stitle, why = item
                css = "err" if kind == "error" else "skip"
                word = "Failed" if kind == "error" else "Not shown"
                out.append(
                    f'<p class="{css}"><b>{html.escape(stitle)}</b>: {word}: '
                    f"{html.escape(why)}</p>"
                )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def page_markdown(title: str, intro: list[str], sections: list[Section]) -> str:
    """The same report in Markdown."""
    out = [f"# {title}", "", *[f"{line}\n" for line in intro]]
    for section in sections:
        out += [f"## {section.title}", ""]
        for kind, item in section.blocks:
            if kind == "table":
                t: Table = item
                out += [f"### {t.title}", "", t.caption, "", to_markdown(t.display), ""]
                out += [f"- {n}" for n in t.notes]
                out += ["", f"Files: [CSV](tables/{t.name}.csv), [LaTeX](tables/{t.name}.tex)",
                        ""]
            elif kind == "figure":
                name, ftitle, caption, file = item
                out += [f"### {ftitle}", "", f"![{ftitle}]({file})", "", caption, ""]
            elif kind == "pre":
                ptitle, text = item
                out += [f"### {ptitle}", "", "```yaml", text, "```", ""]
            else:
                stitle, why = item
                word = "Failed" if kind == "error" else "Not shown"
                out += [f"**{stitle}**: {word}: {why}", ""]
    return "\n".join(out) + "\n"
