"""Partial pooling (`complaw.laws.pooling`): exact recovery of a shared shape and per-model
amplitudes, shrinkage between the shared value and the unpooled fit, REML against statsmodels'
MixedLM, and the ``model:K``, ``usable`` splits and their bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from law_synth import grid
from typer.testing import CliRunner

from complaw.cli import app
from complaw.errors import LawError
from complaw.laws import fit, get_form, pooling
from complaw.laws.fit import fit_group
from complaw.laws.holdout import heldout_error, labelled_folds, variance_optimal
from complaw.laws.pooling import Pooling, fit_pooled

D_GRID = np.array([0.0, 256.0, 1024.0, 4096.0])
SHAPE = {"b": 1.4, "Dl": 700.0, "c": 0.35}  # the degradation form's shared shape
AMPLITUDES = {"m0": 6.0, "m1": 9.0, "m2": 14.0, "m3": 20.0}


def models(amplitudes: dict[str, float | dict[str, float]], noise: float = 0.0, seed: int = 0,
           exact: tuple[str, ...] = (), form: str = "degradation",
           shape: dict[str, float] = SHAPE) -> pd.DataFrame:
    """Rows of ``form`` with the shared ``shape`` and each model's amplitude A (or its own
    coefficients), times log-normal noise (none for the models in ``exact``), with each
    model's baseline."""
    law = get_form(form)
    rng = np.random.default_rng(seed)
    frames = []
    for i, (name, own) in enumerate(amplitudes.items()):
        df = grid(np.array([2.0 + 0.3 * i]), dsizes=D_GRID).assign(model=name)
        data = {c: df[c].to_numpy(float) for c in ("L0", "r", "D")}
        scatter = 0.0 if name in exact else noise
        coefs = own if isinstance(own, dict) else {"A": own}
        df["L"] = law.predict({**coefs, **shape}, data) * np.exp(
            rng.normal(0.0, scatter, len(df)))
        base = df.iloc[:1].assign(r=0.0, D=0.0, L=df["L0"].iloc[0])
        frames += [base, df]
    out = pd.concat(frames, ignore_index=True)
    return out.assign(method="prunenet", calibration="none", dataset="wikitext2",
                      metric="loss")


def pooled(df: pd.DataFrame, form: str = "degradation", share=("b", "Dl", "c"), **kw):
    return fit_pooled(df, form, Pooling.of(get_form(form), ["model"], share), **kw)


def test_a_shared_shape_and_per_model_amplitudes_are_recovered_exactly_without_noise():
    fitted = pooled(models(AMPLITUDES))
    for name, A in AMPLITUDES.items():
        law = fitted.law((name,))
        assert law.coefficients["A"] == pytest.approx(A, rel=1e-5)
        for coef, value in SHAPE.items():
            assert law.coefficients[coef] == pytest.approx(value, rel=1e-5)
    # the spread between models is that of log A, the population mean their centre
    logs = np.log(list(AMPLITUDES.values()))
    assert fitted.tau[0] == pytest.approx(logs.std(), rel=0.05)
    assert np.log(fitted.law(None).coefficients["A"]) == pytest.approx(logs.mean(), abs=0.02)


def test_a_shared_half_saturation_ratio_carries_a_model_past_its_own_rows_to_its_plateau():
    """The plateau form pooled as it declares (h, c shared): a model measured only up to
    r = 0.5, below the shared h = 0.55, gets its r > 0.5 rows from the other models' h; alone,
    its own rows leave the plateau to the noise."""
    own = {"m0": {"A": 8.0, "k": 2.0}, "m1": {"A": 11.0, "k": 2.6}, "m2": {"A": 14.0, "k": 3.0},
           "m3": {"A": 10.0, "k": 2.4}}
    df = models(own, noise=0.02, form="plateau", shape={"h": 0.55, "Dl": 700.0, "c": 0.35})
    test = (df["model"] == "m3") & (df["r"] > 0.5)
    form = get_form("plateau")
    fitted = fit_pooled(df[~test], "plateau", Pooling.of(form, ["model"], form.share))
    alone = fit(df[~test & (df["model"] == "m3")], "plateau").only().law()
    rows = df[test]

    def mape(law) -> float:
        return float(np.mean(np.abs(law.predict(rows["L0"], rows["r"], rows["D"]).L / rows["L"]
                                    - 1.0))) * 100

    assert form.share == ("h", "c")
    assert mape(fitted.law(("m3",))) < 3.0
    assert mape(fitted.law(("m3",))) < mape(alone) / 2


def test_an_em_stopped_by_its_round_cap_says_what_was_still_moving(monkeypatch, tmp_path):
    df = models(dict.fromkeys(AMPLITUDES, 10.0), noise=0.03)  # no spread: tau_A falls to ~0
    done = pooled(df)
    assert done.unsettled == {} and done.rounds < pooling.MAX_ROUNDS
    monkeypatch.setattr(pooling, "MAX_ROUNDS", 20)
    cut = pooled(df)
    assert cut.rounds == 20 and cut.unsettled["A"] < -pooling.TOL
    assert cut.summary()["unsettled"] == cut.unsettled
    df.to_csv(tmp_path / "rows.csv", index=False)
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "rows.csv"), "--form", "degradation",
                                      "--by", "model", "--share", "b,Dl,c"])
    assert result.exit_code == 0, result.output
    assert "the EM stopped at its 20-round cap, tau A still moving by -" in \
        " ".join(result.output.split())


def test_the_per_model_fits_carry_the_pooled_coefficients_and_the_spread():
    fits = fit(models(AMPLITUDES, noise=0.03), "degradation", by="model", pool=["b", "Dl", "c"],
               holdout=["model"])
    assert [f.group["model"] for f in fits] == list(AMPLITUDES)
    first = fits[0].to_dict()
    assert first["pooling"]["share"] == ["b", "Dl", "c"] and set(first["pooling"]["tau"]) == {"A"}
    assert len({round(f.coefficients["b"].estimate, 9) for f in fits}) == 1  # shared
    assert len({round(f.coefficients["A"].estimate, 9) for f in fits}) == 4  # per model
    h = first["heldout"]
    assert h["split"] == "model" and set(h["by_level"]) == {"m0"}
    assert h["by_level"]["m0"] == pytest.approx(h["mape_pct"])


def test_shrinkage_goes_from_the_shared_value_to_the_unpooled_fit_as_a_models_rows_grow():
    truth = dict(AMPLITUDES, new=AMPLITUDES["m3"] * 1.6)
    df = models(truth, noise=0.15, seed=3, exact=("new",))
    new = df[(df["model"] == "new") & (df["r"] > 0)].sort_values(["D", "r"])
    rest = df[(df["model"] != "new") | (df["r"] == 0)]
    share = []
    for n in (1, 4, 16, len(new)):
        fitted = pooled(pd.concat([rest, new.iloc[:n]]))
        mu = np.log(fitted.law(None).coefficients["A"])
        own = np.log(fitted.law(("new",)).coefficients["A"])
        share.append((own - mu) / (np.log(truth["new"]) - mu))
    # one row: about half way from the population towards what it says; more rows: its own
    # (noise-free) rows decide, which is the truth
    assert share[0] < 0.6 and share[0] < min(share[1:]), share
    assert share[-1] == pytest.approx(1.0, abs=0.05), share
    # with the spread fixed: tau -> 0 is the shared (completely pooled) value, tau -> inf the
    # unpooled fit of each model alone
    noisy = models(AMPLITUDES, noise=0.05, seed=1)
    tight = pooled(noisy, share=(), tau=[1e-4] * 4)
    alone = fit_group(noisy, "degradation").estimates()
    loose = pooled(noisy, share=(), tau=[1e3] * 4)
    for name in AMPLITUDES:
        for coef, value in tight.law((name,)).coefficients.items():
            assert value == pytest.approx(alone[coef], rel=1e-3)
        own = fit_group(noisy[(noisy["model"] == name) | (noisy["r"] == 0)
                              & (noisy["model"] == name)], "degradation").estimates()
        for coef, value in loose.law((name,)).coefficients.items():
            assert value == pytest.approx(own[coef], rel=2e-3), (name, coef)


SIZES = {"m0": 1e8, "m1": 2.5e8, "m2": 6e8, "m3": 1.5e9, "m4": 4e9}
SLOPE = -0.6  # d ln A / d log10 N0: bigger models lose less


def sized(sizes: dict[str, float], noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """`models` whose amplitude A is a power of size (ln A = ln 8 + `SLOPE` log10(N0/1e8)),
    with the size as the law table's N0 column."""
    amplitudes = {m: 8.0 * np.exp(SLOPE * np.log10(n / 1e8)) for m, n in sizes.items()}
    df = models(amplitudes, noise=noise, seed=seed)
    return df.assign(N0=df["model"].map(sizes))


def test_a_size_trend_is_recovered_exactly_and_carries_a_law_to_a_model_of_another_size():
    df = sized(SIZES)
    pooling = Pooling.of(get_form("degradation"), ["model"], ("b", "Dl", "c"), trend=("A",))
    fitted = fit_pooled(df, "degradation", pooling)
    assert fitted.summary()["trend"]["A"] == pytest.approx(SLOPE, rel=1e-4)
    assert fitted.tau[0] < 1e-3  # the line explains every model: no spread left
    # a model left out: its law is the population's at its own size, which is its truth
    for held in ("m0", "m2", "m4"):
        train = df[df["model"] != held]
        rest = fit_pooled(train, "degradation", pooling)
        own = df[df["model"] == held]
        law = rest.law_of(own)
        assert law.coefficients["A"] == pytest.approx(8.0 * np.exp(
            SLOPE * np.log10(SIZES[held] / 1e8)), rel=1e-3)
        flat = fit_pooled(train, "degradation", Pooling.of(get_form("degradation"), ["model"],
                                                           ("b", "Dl", "c")))
        L = own["L"].to_numpy()
        with_trend = np.abs(rest.predict(own, 0.95).L - L) / L
        without = np.abs(flat.predict(own, 0.95).L - L) / L
        assert with_trend.max() < 1e-3 < without.mean()
    with pytest.raises(LawError, match="needs its N0"):
        fitted.law(None)
    with pytest.raises(LawError, match="needs 3 or more"):
        fit_pooled(df[df["model"].isin(["m0", "m1"])], "degradation", pooling)


def test_a_linear_form_with_a_size_trend_is_reml_as_statsmodels_mixedlm_computes_it():
    """beta_g ~ N(mu + slope (log10 N0_g - mean), tau²) is MixedLM with the centred size times
    log(1 + r) as a fixed effect beside a random slope on log(1 + r)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    rng = np.random.default_rng(11)
    sizes = 10.0 ** rng.uniform(8, 10, 7)
    c = np.log10(sizes) - np.log10(sizes).mean()
    frames = []
    for i, (size, effect) in enumerate(zip(sizes, rng.normal(0.0, 0.3, 7), strict=True)):
        df = grid(np.array([2.0 + 0.25 * i]), dsizes=D_GRID).assign(model=f"m{i}", N0=size)
        beta = 1.6 - 0.5 * c[i] + effect
        df["L"] = np.exp(0.7 * np.log(df["L0"]) + beta * np.log1p(df["r"])
                         + rng.normal(0.0, 0.05, len(df)))
        frames.append(df)
    df = pd.concat(frames, ignore_index=True).assign(
        method="prunenet", calibration="none", dataset="wikitext2", metric="loss")
    fitted = fit_pooled(df, "eq2", Pooling.of(get_form("eq2"), ["model"], ("alpha",),
                                              trend=("beta",)))
    x = np.log1p(df["r"].to_numpy())
    centred = df["model"].map(dict(zip([f"m{i}" for i in range(7)], c, strict=True)))
    X = np.column_stack([np.log(df["L0"]), x, centred.to_numpy() * x])
    reml = MixedLM(np.log(df["L"]), X, groups=df["model"], exog_re=x[:, None]).fit(reml=True)
    alpha, mu, slope = reml.fe_params
    summary = fitted.summary()
    assert fitted.law(None, 10 ** np.log10(sizes).mean()).coefficients["alpha"] == \
        pytest.approx(alpha, rel=1e-4)
    assert summary["mean"]["beta"] == pytest.approx(mu, rel=1e-4)
    assert summary["trend"]["beta"] == pytest.approx(slope, rel=1e-3)
    assert fitted.tau[0] ** 2 == pytest.approx(float(reml.cov_re.iloc[0, 0]), rel=1e-3)
    assert fitted.s**2 == pytest.approx(reml.scale, rel=1e-3)
    for i, (name, effect) in enumerate(reml.random_effects.items()):
        own = fitted.law((name,)).coefficients["beta"]
        expected = mu + slope * c[int(name[1:])] + float(effect.iloc[0])
        assert own == pytest.approx(expected, rel=1e-4), i


def test_a_linear_form_pooled_is_reml_as_statsmodels_mixedlm_computes_it():
    from statsmodels.regression.mixed_linear_model import MixedLM

    rng = np.random.default_rng(7)
    frames = []
    for i, beta in enumerate(rng.normal(1.6, 0.4, 6)):
        df = grid(np.array([2.0 + 0.25 * i]), dsizes=D_GRID).assign(model=f"m{i}")
        df["L"] = np.exp(0.7 * np.log(df["L0"]) + beta * np.log1p(df["r"])
                         + rng.normal(0.0, 0.05, len(df)))
        frames.append(df)
    df = pd.concat(frames, ignore_index=True).assign(
        method="prunenet", calibration="none", dataset="wikitext2", metric="loss")
    fitted = pooled(df, "eq2", share=("alpha",))
    X = np.column_stack([np.log(df["L0"]), np.log1p(df["r"])])
    reml = MixedLM(np.log(df["L"]), X, groups=df["model"], exog_re=X[:, 1:]).fit(reml=True)
    pop = fitted.law(None).coefficients
    assert [pop["alpha"], pop["beta"]] == pytest.approx(list(reml.fe_params), rel=1e-4)
    assert fitted.tau[0] ** 2 == pytest.approx(float(reml.cov_re.iloc[0, 0]), rel=1e-3)
    assert fitted.s**2 == pytest.approx(reml.scale, rel=1e-3)
    for name, effect in reml.random_effects.items():
        own = fitted.law((name,)).coefficients["beta"]
        assert own - pop["beta"] == pytest.approx(float(effect.iloc[0]), rel=1e-3, abs=1e-6)


def test_model_k_gives_the_fit_the_variance_optimal_rows_and_reports_random_draws():
    df = models(AMPLITUDES, noise=0.05, seed=2)
    split = heldout_error(df, "degradation", "model:2")
    own = df.reset_index(drop=True)
    for fold in labelled_folds(own, "model:2"):
        law = fit_group(own.iloc[fold.train], "degradation").law()
        rows = own.iloc[fold.test]
        chosen = set(fold.test[variance_optimal(law, rows, 2)])
        predicted = set(split.predictions.loc[split.predictions["level"] == fold.level, "index"])
        assert predicted == set(fold.test) - chosen and len(predicted) == len(fold.test) - 2
        # the choice is the brute-force best pair: the least summed prediction variance
        G = law.gradient({c: rows[c].to_numpy(float) for c in ("L0", "r", "D")})
        M = np.linalg.pinv(np.asarray(law.cov))
        s2 = law.resid_std**2

        def variance(pair, G=G, M=M, s2=s2):
            J = G[list(pair)]
            return np.trace(G @ np.linalg.solve(M + J.T @ J / s2, G.T))

        pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
        best = min(pairs, key=variance)
        assert set(fold.test[list(best)]) == chosen
    s = split.summary()
    assert set(s.by_level) == set(AMPLITUDES) and s.random["draws"] == 5
    assert s.to_dict()["random"]["median_mape_pct"] > 0


def test_the_usable_split_fits_the_mild_half_of_the_usable_rows_and_predicts_the_rest():
    df = models(AMPLITUDES, noise=0.02)
    (fold,) = labelled_folds(df, "usable")
    usable = (df["L"] <= 2 * df["L0"]) & (df["r"] > 0)
    cut = np.median(df.loc[usable, "r"])
    assert usable.iloc[fold.test].all() and (df["r"].iloc[fold.test] > cut).all()
    train = df.iloc[fold.train]
    assert ((train["L"] <= 2 * train["L0"]) & (train["r"] <= cut)).all()
    assert fold.level == f"usable r>{cut:g}"


@pytest.mark.parametrize("args, needle", [
    (["--form", "onset", "--share", "k,q"], "form onset has no coefficient q"),
    (["--form", "degradation", "--holdout", "model:40"], "K must be below"),
    (["--form", "degradation", "--share", "b,Dl,c", "--trend", "b"], "b is shared"),
    (["--form", "degradation", "--share", "b,Dl,c", "--trend", "q"], "has no coefficient q"),
    (["--form", "degradation", "--share", "b,Dl,c", "--trend", "A"], "column N0"),
    (["--form", "degradation", "--trend", "A"], "add --share or --pool"),
    (["--compare", "--pool", "--trend", "A"], "with --compare use --pool"),
])
def test_bad_pooling_input_is_one_line_exit_2_and_writes_nothing(tmp_path, refused, args,
                                                                  needle):
    path = tmp_path / "records.csv"
    models(AMPLITUDES, noise=0.03).to_csv(path, index=False)
    refused(["fit", str(path), "--by", "model", *args], needle, tmp_path)
    with pytest.raises(LawError, match="cannot be pooled"):
        Pooling.of(get_form("two-step"), ["model"], True)


def test_fit_json_reports_each_held_out_level(tmp_path):
    path = tmp_path / "records.csv"
    models(AMPLITUDES, noise=0.03).to_csv(path, index=False)
    out = json.loads(CliRunner().invoke(app, [
        "fit", str(path), "--form", "degradation", "--by", "model", "--pool", "--holdout",
        "model", "--json"]).stdout)
    assert {f["group"]["model"]: list(f["heldout"]["by_level"]) for f in out} == {
        m: [m] for m in AMPLITUDES}


def test_a_held_out_fold_that_cannot_be_fitted_says_why(tmp_path):
    """Leaving one of three models out leaves two for a size trend: no fold is fitted, and
    the output says so and why rather than showing a bare '-'."""
    path = tmp_path / "records.csv"
    df = sized({m: SIZES[m] for m in ("m0", "m1", "m2")}, noise=0.02)
    df[df["r"] > 0].to_csv(path, index=False)  # no baseline rows: they would stay in the fit
    args = ["fit", str(path), "--form", "degradation", "--by", "model", "--share", "b,Dl,c",
            "--trend", "A", "--holdout", "model"]
    out = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    for f in out:
        h = f["heldout"]
        assert h["n"] == 0 and h["unfitted"] == 20 and "needs 3 or more" in h["why"][0]
    text = CliRunner().invoke(app, args).stdout
    assert "held-out model: 60 test row(s) of 3 group(s) not predicted" in " ".join(text.split())
