"""Links from a task's loss to its accuracy: registered, replaceable, fitted per task.

A *link* maps the task loss ℓ (bits per byte of the correct answer, from the same lm-eval
log-likelihoods as the accuracy) to the zero-shot accuracy of that task. The task's chance
accuracy is known (the law table's ``chance`` column), never fitted. Adding a link is a
subclass of `Link` and one ``LINKS.add`` call.

| name | link | coefficients |
|---|---|---|
| sigmoid | acc = chance + (top - chance) σ(-slope (ℓ - mid)) | slope > 0, mid, top ∈ (chance, 1] |

`fit_link` fits a link by `scipy.optimize.least_squares` on the logit of accuracy (the scale of
the two-step law's intervals, `complaw.laws.forms.LOGIT`), with the Gauss-Newton covariance
s² (J'J)^-1 and t intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit

from complaw.errors import LawError
from complaw.laws.fit import Coefficient, _coefficients, covariance, on_bound
from complaw.laws.forms import INF, LOGIT, Coef, Params
from complaw.registry import Registry

CHANCE = Coef("chance", "chance", (0.0, 1.0), (0.25,))
"""The task's chance accuracy: known, carried with the coefficients (zero variance)."""


class TooFewAccuraciesError(LawError):
    """A link fit has too few distinct accuracies to fit its coefficients."""


class MissingChanceError(LawError):
    """The rows do not say the task's chance accuracy."""


@dataclass(frozen=True)
class Link:
    """What every link declares: its coefficients (``chance`` excluded: it is known), the
    accuracy of a task loss, the task loss of an accuracy, and where a fit starts."""

    name: str
    equation: str
    template: str
    """The link with ``{name}`` where each coefficient's value goes (``chance`` included)."""
    parameters: tuple[Coef, ...] = ()

    @property
    def coefs(self) -> tuple[Coef, ...]:
        return self.parameters

    def coef_names(self) -> list[str]:
        return [c.name for c in self.coefs]

    def predict(self, coefficients: Params, loss: np.ndarray) -> np.ndarray:
        """The accuracy at task loss ``loss`` (``coefficients`` include ``chance``)."""
        raise NotImplementedError

    def inverse(self, coefficients: Params, acc: np.ndarray) -> np.ndarray:
        """The task loss at accuracy ``acc``, clipped strictly inside the link's range."""
        raise NotImplementedError

    def bounds(self, chance: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the coefficients for a task with this chance level."""
        return (np.array([c.bounds[0] for c in self.coefs], float),
                np.array([c.bounds[1] for c in self.coefs], float))

    def starts(self, loss: np.ndarray, acc: np.ndarray, chance: float) -> list[np.ndarray]:
        """Starting points of a fit on the pairs (``loss``, ``acc``)."""
        raise NotImplementedError


INSIDE = 1e-6
"""How far inside (chance, top), as a share of top - chance, `SigmoidLink.inverse` clips."""


@dataclass(frozen=True)
class SigmoidLink(Link):
    """acc = chance + (top - chance) sigmoid(-slope (ℓ - mid)): falls from top (a perfect task
    loss) to chance (a useless one), steepest at ℓ = mid. (``slope``, symbol k, is not called
    ``k`` so that it never collides with a loss form's coefficient, such as onset's k.)"""

    def predict(self, coefficients: Params, loss: np.ndarray) -> np.ndarray:
        chance, top = np.asarray(coefficients["chance"]), np.asarray(coefficients["top"])
        s = expit(-np.asarray(coefficients["slope"]) * (np.asarray(loss) - coefficients["mid"]))
        return chance + (top - chance) * s

    def inverse(self, coefficients: Params, acc: np.ndarray) -> np.ndarray:
        chance, top = np.asarray(coefficients["chance"]), np.asarray(coefficients["top"])
        share = np.clip((np.asarray(acc) - chance) / (top - chance), INSIDE, 1.0 - INSIDE)
        return coefficients["mid"] - logit(share) / np.asarray(coefficients["slope"])

    def bounds(self, chance: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = super().bounds(chance)
        top = self.coef_names().index("top")
        lo[top] = chance + INSIDE
        return lo, hi

    def starts(self, loss: np.ndarray, acc: np.ndarray, chance: float) -> list[np.ndarray]:
        spread = max(float(np.std(loss)), 1e-3)
        top = float(np.clip(acc.max() + 0.02, chance + 0.01, 1.0))
        return [np.array([slope / spread, mid, top])
                for slope in (0.5, 2.0) for mid in np.percentile(loss, [25, 50, 75])]


LINKS: Registry[Link] = Registry("accuracy link", LawError)
LINKS.add("sigmoid", SigmoidLink(
    "sigmoid", "acc = chance + (top - chance) sigmoid(-slope (ℓ - mid))",
    "acc = {chance} + ({top} - {chance}) σ(-{slope} (ℓ - {mid}))",
    parameters=(Coef("slope", "k", (1e-6, 1e4)), Coef("mid", "mid", (-INF, INF)),
                Coef("top", "top", (0.0, 1.0))),
))


def get_link(name: str | Link) -> Link:
    """The registered link called ``name`` (a `Link` is returned as is)."""
    return name if isinstance(name, Link) else LINKS.get(name)


@dataclass
class LinkFit:
    """A link fitted on one task's (task loss, accuracy) pairs."""

    link: str
    chance: float
    coefficients: dict[str, Coefficient]
    cov: np.ndarray
    """Covariance of the coefficients (`Link.coef_names` order), s² (J'J)^-1."""
    n: int
    df_resid: float
    resid: np.ndarray
    """Residuals on the logit of accuracy."""

    @property
    def resid_std(self) -> float:
        """The residual s.d. on the logit of accuracy."""
        return float(np.sqrt(self.resid @ self.resid / self.df_resid))

    def estimates(self) -> dict[str, float]:
        """Coefficient estimates by name, ``chance`` included."""
        return {**{k: c.estimate for k, c in self.coefficients.items()}, "chance": self.chance}


def fit_link(link: str | Link, loss: Any, acc: Any, chance: float | None, *,
             level: float = 0.95, what: str = "the link") -> LinkFit:
    """Fit ``link`` on pairs (``loss``, ``acc``) of one task whose chance accuracy is
    ``chance``, by least squares on logit(acc) from every `Link.starts` point (keeping the
    best), with the Gauss-Newton covariance and t intervals at ``level``."""
    from scipy.optimize import least_squares

    link = get_link(link)
    loss, acc = np.asarray(loss, float), np.asarray(acc, float)
    names = link.coef_names()
    if chance is None or not np.isfinite(chance):
        raise MissingChanceError(
            f"{what}: the rows do not say the task's chance accuracy (column chance, e.g. 0.25 "
            "for arc_easy, 0.5 for piqa); rebuild the law table from the records, or add it"
        )
    distinct = len(np.unique(acc))
    if distinct < len(names) + 1:
        raise TooFewAccuraciesError(
            f"{what} has {distinct} distinct accuracies for {len(names)} coefficients; it "
            f"needs at least {len(names) + 1}: measure accuracy at more ratios"
        )
    z = LOGIT.to_scale(acc)

    def residuals(theta: np.ndarray) -> np.ndarray:
        p = dict(zip(names, theta, strict=True), chance=chance)
        return LOGIT.to_scale(link.predict(p, loss)) - z

    lo, hi = link.bounds(chance)
    best = None
    for start in link.starts(loss, acc, chance):
        res = least_squares(residuals, np.clip(start, lo, hi), bounds=(lo, hi),
                            x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
        if best is None or res.cost < best.cost:
            best = res
    dof = len(acc) - len(names)
    cov = covariance(best.jac, best.fun)
    coefficients = _coefficients(names, best.x, cov, dof, level, on_bound(best.x, lo, hi))
    return LinkFit(link.name, float(chance), coefficients, cov, len(acc), float(dof), best.fun)
