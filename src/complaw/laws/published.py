"""The paper's published laws (Tables 1, 2, 3, 4, 6 and Figure 6), addressable by name.

Names look like ``paper:llama-3-8b:extrinsic`` (Table 2), ``paper:all:intrinsic`` (Table 1;
ablations ``paper:all:intrinsic:eq2`` / ``:eq3``), ``paper:calibrated:extrinsic`` (Table 3),
``paper:runtime:qwen-2.5-14b`` (Table 4), ``paper:wikitext2:intrinsic`` (Table 6). The numbers
live in ``published.yaml`` next to this module, with notes on how they were transcribed.

`get_law` also reads laws you fitted: ``FILE.json`` written by ``complaw fit --json`` (or a
`Law.to_dict` list), optionally ``FILE.json#NAME`` to pick one of several.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from complaw.errors import LawError
from complaw.laws.law import Law

PREFIX = "paper:"
_COEFS = ("alpha", "beta", "gamma", "const")


@lru_cache(maxsize=1)
def _load() -> dict[str, Law]:
    text = resources.files("complaw.laws").joinpath("published.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    laws: dict[str, Law] = {}
    for table in raw["tables"]:
        for entry in table["laws"]:
            name = entry["name"]
            if name in laws:
                raise LawError(f"published law {name!r} is listed twice in published.yaml")
            stats = {
                "adj_r2": entry.get("adj_r2"),
                "f": entry.get("f"),
                "r2_kind": "as printed (most likely uncentered: no-intercept OLS)",
            }
            laws[name] = Law(
                name=name,
                form=entry["form"],
                metric=entry["metric"],
                coefficients={k: entry[k] for k in _COEFS if k in entry},
                source=f"{table['table']}: {table['subject']}",
                stats=stats,
                note=entry.get("note", ""),
            )
    return laws


def published_laws() -> list[Law]:
    """All published laws, in the order of the paper's tables."""
    return list(_load().values())


def published_law(name: str) -> Law:
    """The published law called ``name`` (e.g. ``paper:llama-3-8b:extrinsic``)."""
    laws = _load()
    if name not in laws:
        close = [n for n in laws if name.removeprefix(PREFIX).split(":")[0] in n] or list(laws)
        raise LawError(
            f"no published law {name!r}; try one of {', '.join(close[:8])}"
            f"{', ...' if len(close) > 8 else ''} (`complaw laws` lists all)"
        )
    return laws[name]


def _law_from_fit(d: dict[str, Any]) -> Law:
    """A `Law` from one fit of ``complaw fit --json`` (or from `Law.to_dict`)."""
    coefs = d.get("coefficients") or {}
    values = {k: (v["estimate"] if isinstance(v, dict) else v) for k, v in coefs.items()}
    return Law(
        name=str(d.get("name", "fit")),
        form=str(d["form"]),
        metric=str(d["metric"]),
        coefficients=values,
        source=str(d.get("source", "fitted")),
        stats={k: d[k] for k in ("adj_r2", "r2_kind", "f", "n") if k in d},
        cov=None if d.get("cov") is None else np.asarray(d["cov"], dtype=float),
        df_resid=d.get("df_resid"),
        resid_std=d.get("resid_std"),
    )


def laws_from_file(path: str | Path) -> dict[str, Law]:
    """The laws in a JSON file from ``complaw fit --json`` (or a list of `Law.to_dict`)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise LawError(f"cannot read laws from {str(path)!r}: {exc}") from None
    items = raw.get("fits", [raw]) if isinstance(raw, dict) else raw
    try:
        laws = [_law_from_fit(d) for d in items]
    except (KeyError, TypeError) as exc:
        raise LawError(
            f"{str(path)!r} does not hold fitted laws (missing {exc}); "
            "write it with `complaw fit ... --json > FILE.json`"
        ) from None
    return {law.name: law for law in laws}


def get_law(name: str) -> Law:
    """A law by name: ``paper:...`` for a published law, ``FILE.json`` or ``FILE.json#NAME``
    for a fitted one."""
    if name.startswith(PREFIX):
        return published_law(name)
    path, _, pick = name.partition("#")
    if path.endswith(".json") or Path(path).is_file():
        laws = laws_from_file(path)
        if pick:
            if pick not in laws:
                raise LawError(f"no law {pick!r} in {path}; it holds {', '.join(laws)}")
            return laws[pick]
        if len(laws) != 1:
            raise LawError(
                f"{path} holds {len(laws)} laws; pick one as {path}#NAME with NAME one of "
                f"{', '.join(laws)}"
            )
        return next(iter(laws.values()))
    raise LawError(
        f"unknown law {name!r}: give a published name like paper:llama-3-8b:extrinsic "
        "(`complaw laws` lists them) or a FILE.json from `complaw fit --json`"
    )
