"""Forms: design matrices, prediction, registry."""

from __future__ import annotations

import numpy as np
import pytest

from complaw.errors import LawError
from complaw.laws import FORMS, Law, LinearForm, get_form
from complaw.laws.law import law_inputs
from complaw.laws.table import NegativeDataSizeError, RatioOutOfRangeError

DATA = {"L0": np.array([0.5, 2.0]), "r": np.array([0.1, 0.5]), "D": np.array([0.0, 9.0])}


def test_registry_has_the_forms():
    assert {"eq1", "eq2", "eq3", "runtime", "additive"} <= set(FORMS)
    assert {"degradation", "onset", "plateau", "retention"} <= set(FORMS)
    with pytest.raises(LawError, match="unknown law form 'eq9'"):
        get_form("eq9")


def test_eq1_design_is_the_papers_log_transform():
    X = get_form("eq1").design(DATA)
    expected = np.column_stack(
        [np.log(DATA["L0"]), np.log(1 + DATA["r"]), np.log(1 + 1 / (DATA["D"] + 1))]
    )
    np.testing.assert_allclose(X, expected)
    Xi = get_form("eq1").design(DATA, intercept=True)
    np.testing.assert_allclose(Xi[:, 0], 1.0)
    assert get_form("eq1").coef_names(True) == ["const", "alpha", "beta", "gamma"]
    assert get_form("eq2").coef_names() == ["alpha", "beta"]
    assert get_form("eq3").coef_names() == ["alpha", "gamma"]
    assert get_form("runtime").coef_names() == ["const", "beta"]


def test_predict_matches_the_formula():
    coefs = {"alpha": 0.9, "beta": -1.2, "gamma": -0.1}
    L = get_form("eq1").predict(coefs, DATA)
    expected = DATA["L0"] ** 0.9 * (1 + DATA["r"]) ** -1.2 * (1 + 1 / (DATA["D"] + 1)) ** -0.1
    np.testing.assert_allclose(L, expected)
    # runtime: S = S0 e^c (1+r)^beta
    S = get_form("runtime").predict({"const": 0.1, "beta": -1.5}, DATA)
    np.testing.assert_allclose(S, DATA["L0"] * np.exp(0.1) * (1 + DATA["r"]) ** -1.5)
    A = get_form("additive").predict(coefs, DATA)
    np.testing.assert_allclose(A, 0.9 * DATA["L0"] - 1.2 * DATA["r"] - 0.1 / (DATA["D"] + 1))


def test_plateau_is_half_its_ceiling_at_h_and_never_passes_it():
    coefs = {"A": 6.0, "k": 3.0, "h": 0.4, "Dl": 500.0, "c": 1.0}
    form = get_form("plateau")
    L = form.predict(coefs, {"L0": np.full(3, 2.0), "r": np.array([0.0, 0.4, 0.4]),
                             "D": np.array([0.0, 0.0, 500.0])})
    np.testing.assert_allclose(L, [2.0, 5.0, 3.5])  # L0; L0 + A/2; halved again by D = Dl, c = 1
    r = np.linspace(0.0, 0.999, 200)
    L = form.predict(coefs, {"L0": np.full_like(r, 2.0), "r": r, "D": np.zeros_like(r)})
    assert np.all(np.diff(L) > 0) and L[-1] < 2.0 + 6.0
    assert form.feasible and form.share == ("h", "c")


def test_response_inverts_predict():
    for name in FORMS:
        form = get_form(name)
        if not isinstance(form, LinearForm):
            continue
        coefs = {c: 0.3 for c in form.coef_names()}
        L = form.predict(coefs, DATA)
        y = form.response(L, DATA)
        np.testing.assert_allclose(y, form.design(DATA) @ np.full(len(coefs), 0.3), atol=1e-12)


def test_law_checks_its_inputs():
    law = Law("x", "eq1", "accuracy", {"alpha": 1.0, "beta": -1.0, "gamma": -0.1})
    with pytest.raises(RatioOutOfRangeError):
        law.predict(0.5, 1.2)
    with pytest.raises(NegativeDataSizeError):
        law.predict(0.5, 0.2, -1)
    with pytest.raises(LawError, match="lacks coefficient"):
        Law("y", "eq1", "accuracy", {"alpha": 1.0})
    assert law_inputs(0.5, [0.1, 0.2], 0)["L0"].tolist() == [0.5, 0.5]
