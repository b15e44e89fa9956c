"""`build_report(STUDY)`: read a study, fit its laws, write the tables, figures and the page."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from complaw.errors import RecordError
from complaw.experiment.folder import StudyFolder
from complaw.io import atomic_folder, ensure_dir, write_text_atomic
from complaw.progress import track
from complaw.report.analysis import Analysis
from complaw.report.figures import FIGURES, FigureSpec
from complaw.report.render import Section, page_html, page_markdown, to_latex
from complaw.report.study import Skip, load_study
from complaw.report.tables import TABLES, TableSpec, fit_sets
from complaw.report.zeroshot import FIGURES as _ZEROSHOT  # noqa: F401  (registers its items)

MARKER = "index.html"
SECTION_TITLES = {
    "answer": "The answer",
    "laws": "Fitted laws",
    "paper": "Compared with the paper",
    "plan": "Planner",
    "figures": "Figures",
    "study": "Study",
}
FIGURE_DPI = 100


@dataclass
class Report:
    """What `build_report` wrote: the page, the items shown, and those left out and why."""

    index: Path
    tables: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def default_out(study: str | Path) -> Path:
    """Where a study's report goes by default: ``STUDY/report``."""
    return StudyFolder(study).report


def _check_out(out: Path) -> None:
    """Refuse to replace a non-empty folder that is not an earlier report."""
    if out.exists() and not out.is_dir():
        raise RecordError(f"report folder {str(out)!r} is a file; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise RecordError(
            f"report folder {str(out)!r} is not empty and holds no earlier report; "
            "choose a new or empty --out"
        )


def _draw(spec: FigureSpec, analysis: Analysis, folder: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = spec.draw(analysis)
    FigureCanvasAgg(fig)
    file = f"figures/{spec.name}.png"
    fig.savefig(ensure_dir(folder / "figures") / f"{spec.name}.png", dpi=FIGURE_DPI,
                pil_kwargs={"compress_level": 1})
    return file


def _write_table(spec: TableSpec, analysis: Analysis, folder: Path):
    table = spec.make(analysis)
    tables = ensure_dir(folder / "tables")
    write_text_atomic(tables / f"{spec.name}.csv", table.data.to_csv(index=False))
    write_text_atomic(tables / f"{spec.name}.tex", to_latex(table))
    return table


def build_report(study: str | Path, out: str | Path | None = None) -> Report:
    """Write the report of ``study`` (a study folder or a folder of records) into ``out``
    (default ``STUDY/report``): index.html, index.md, figures/*.png, tables/*.csv|.tex and
    laws.json (the fitted laws, readable by ``complaw predict --law laws.json#NAME``).

    Sections whose data the study lacks are named in the page with the reason; a section that
    fails unexpectedly is named with its error (and in `Report.errors`) instead of stopping
    the report. An existing non-empty ``out`` is replaced only if it holds an earlier report.
    """
    study = Path(study)
    out = Path(out) if out is not None else default_out(study)
    _check_out(out)
    data = load_study(study)
    analysis = Analysis(data)
    report = Report(out / MARKER)
    sections = {key: Section(title) for key, title in SECTION_TITLES.items()}
    with atomic_folder(out, overwrite=True) as folder:
        analysis.laws_file = analysis.write_laws(folder / "laws.json", fit_sets(analysis))
        items: list[TableSpec | FigureSpec] = [s for _, s in TABLES.items()]
        items += [s for _, s in FIGURES.items()]
        for item in track(items, "report"):
            is_table = isinstance(item, TableSpec)
            section = sections[item.section]
            try:
                if is_table:
                    section.blocks.append(("table", _write_table(item, analysis, folder)))
                    report.tables.append(item.name)
                else:
                    file = _draw(item, analysis, folder)
                    section.blocks.append(("figure", (item.name, item.title, item.caption, file)))
                    report.figures.append(item.name)
            except Skip as why:
                report.skipped[item.name] = str(why)
                section.blocks.append(("skip", (item.title, str(why))))
            except Exception as exc:  # a report shows what it can; the error is named
                msg = f"{type(exc).__name__}: {exc}"
                report.errors[item.name] = msg
                section.blocks.append(("error", (item.title, msg)))
                print(f"report: {item.name} failed: {msg}", file=sys.stderr)
        title = f"complaw report: {study.resolve().name}"
        intro = ["The findings come first: each method's best law by held-out error, the "
                 "planner's recommendation and Figure 3; the study's spec and counts are at "
                 "the end."]
        sections["study"].blocks.append(("pre", ("Study", "\n".join([
            f"Study: {study.resolve()} (records in {data.records_dir.resolve()}).",
            f"Records: {data.n_ok} ok, {data.n_failed} failed, {len(data.problems)} "
            f"unreadable; {len(data.laws)} law-table rows.",
            f"Written {datetime.now(UTC).isoformat(timespec='seconds')}; fitted laws in "
            "laws.json (complaw predict --law laws.json#NAME).",
        ]))))
        if data.spec is not None:
            sections["study"].blocks.append(("pre", ("Spec", data.spec)))
        order = list(sections.values())
        write_text_atomic(folder / "index.html", page_html(title, intro, order))
        write_text_atomic(folder / "index.md", page_markdown(title, intro, order))
    analysis.laws_file = out / "laws.json"
    return report
