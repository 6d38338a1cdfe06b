"""The learned relevance score: fitting, prediction, config, candidate features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from secondopinion.relevance import (
    FEATURES,
    RelevanceModel,
    candidate_features,
    fit_logistic,
)


def _synthetic(n: int, coef: np.ndarray, intercept: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(coef)))
    p = 1.0 / (1.0 + np.exp(-(intercept + x @ coef)))
    y = (rng.random(n) < p).astype(np.float64)
    return x, y


def _model(coef=(1.5, -0.5), mean=(0.0, 0.0), scale=(1.0, 1.0), intercept=-0.25):
    return RelevanceModel(
        ("ce_logit", "bm25_rel"), np.array(mean), np.array(scale), np.array(coef), intercept
    )


def test_fit_recovers_known_coefficients() -> None:
    coef, intercept = np.array([1.5, -0.8, 0.0]), -0.4
    x, y = _synthetic(40_000, coef, intercept)
    got, b = fit_logistic(x, y, l2=1e-6)
    # Maximum likelihood on 40k rows: standard error about 0.015 per coefficient.
    np.testing.assert_allclose(got, coef, atol=0.06)
    assert abs(b - intercept) < 0.06


def test_fit_satisfies_the_penalised_optimality_condition() -> None:
    """At the optimum the gradient X'(p - y) + l2 * coef is zero (intercept unpenalised)."""
    x, y = _synthetic(500, np.array([2.0, -1.0]), 0.3, seed=1)
    l2 = 5.0
    coef, b = fit_logistic(x, y, l2=l2)
    p = 1.0 / (1.0 + np.exp(-(b + x @ coef)))
    np.testing.assert_allclose(x.T @ (p - y) + l2 * coef, 0.0, atol=1e-6)
    assert abs(np.sum(p - y)) < 1e-6


def test_fit_is_finite_on_separable_data() -> None:
    x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0.0, 0.0, 1.0, 1.0])
    coef, b = fit_logistic(x, y, l2=0.1)
    assert np.isfinite(coef).all() and np.isfinite(b) and coef[0] > 0


def test_model_fit_standardises_and_recovers_raw_scale_effect() -> None:
    coef, intercept = np.array([1.0, -2.0]), 0.5
    x, y = _synthetic(30_000, coef, intercept, seed=2)
    raw = x * np.array([10.0, 0.1]) + np.array([3.0, -1.0])  # shift and scale the columns
    model = RelevanceModel.fit(raw, y, ("ce_logit", "bm25_rel"), l2=1e-6)
    np.testing.assert_allclose(model.mean, raw.mean(axis=0))
    np.testing.assert_allclose(model.scale, raw.std(axis=0))
    # coef per raw unit = coef per std / scale; the true per-raw-unit effect is coef / [10, 0.1]
    np.testing.assert_allclose(model.coef / model.scale, coef / np.array([10.0, 0.1]), rtol=0.06)


def test_predict_proba_matches_the_formula_and_lies_in_unit_interval() -> None:
    model = _model(mean=(1.0, 0.5), scale=(2.0, 0.25))
    x = np.array([[0.0, 0.0], [1e6, 0.0], [-1e6, 0.0], [3.0, 1.0]])
    p = model.predict_proba(x)
    z = -0.25 + ((x - [1.0, 0.5]) / [2.0, 0.25]) @ [1.5, -0.5]
    expected = np.exp(-np.logaddexp(0.0, -z))
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    assert np.all((p >= 0) & (p <= 1)) and p[1] == 1.0 and p[2] == 0.0


def test_predict_proba_is_monotone_in_a_positive_coefficient_feature() -> None:
    model = _model()
    ce = np.linspace(-10, 10, 101)
    p = model.predict_proba({"ce_logit": ce, "bm25_rel": np.full(101, 0.3), "unused": ce})
    assert np.all(np.diff(p) > 0)
    assert np.all(
        np.diff(model.predict_proba({"ce_logit": np.zeros(5), "bm25_rel": np.arange(5.0)})) < 0
    )


def test_dict_and_array_inputs_agree() -> None:
    model = _model()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 2))
    by_name = {"bm25_rel": x[:, 1], "ce_logit": x[:, 0]}
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(by_name))


def test_nan_feature_is_refused_by_name() -> None:
    model = _model()
    with pytest.raises(ValueError, match="bm25_rel"):
        model.predict_proba({"ce_logit": np.zeros(3), "bm25_rel": np.array([0.0, np.nan, 1.0])})
    with pytest.raises(ValueError, match="NaN"):
        model.predict_proba(np.array([[np.nan, 0.0]]))


def test_wrong_shapes_and_missing_features_are_refused() -> None:
    model = _model()
    with pytest.raises(ValueError, match="2 columns"):
        model.predict_proba(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="missing"):
        model.predict_proba({"ce_logit": np.zeros(3)})


def test_config_round_trip_through_json() -> None:
    model = _model(mean=(0.1, 0.2), scale=(1.5, 0.5))
    text = json.dumps({"format": 1, "kind": "cross-encoder", "relevance": model.to_config()})
    again = RelevanceModel.from_config(json.loads(text)["relevance"])
    whole = RelevanceModel.from_config(json.loads(text))  # the whole secondopinion.json
    x = np.random.default_rng(4).normal(size=(10, 2))
    for other in (again, whole):
        assert other.features == model.features
        np.testing.assert_array_equal(other.predict_proba(x), model.predict_proba(x))
    assert model.to_config()["version"] == 1


def test_from_model_dir(tmp_path) -> None:  # noqa: ANN001 - pytest fixture
    model = _model()
    config = {"format": 1, "kind": "cross-encoder", "max_length": 256}
    (tmp_path / "secondopinion.json").write_text(json.dumps(config))
    assert RelevanceModel.from_model_dir(tmp_path) is None
    config["relevance"] = model.to_config()
    (tmp_path / "secondopinion.json").write_text(json.dumps(config))
    loaded = RelevanceModel.from_model_dir(tmp_path)
    assert loaded is not None and loaded.to_config() == model.to_config()
    config["relevance"]["coef"] = [1.0]
    (tmp_path / "secondopinion.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="secondopinion.json.*coef"):
        RelevanceModel.from_model_dir(tmp_path)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"version": 2}, "version"),
        ({"features": "ce_logit"}, "features"),
        ({"features": ["ce_logit", "nope"]}, "nope"),
        ({"mean": [0.0]}, "mean"),
        ({"scale": [1.0, 0.0]}, "scale"),
        ({"coef": [1.0, "x"]}, "coef"),
        ({"intercept": None}, "intercept"),
        ({"intercept": float("nan")}, "intercept"),
    ],
)
def test_bad_config_names_the_key(change: dict, key: str) -> None:
    cfg = _model().to_config() | change
    with pytest.raises(ValueError, match=key):
        RelevanceModel.from_config(cfg)


@pytest.mark.parametrize("key", ["version", "features", "mean", "scale", "coef", "intercept"])
def test_missing_config_key_is_named(key: str) -> None:
    cfg = _model().to_config()
    del cfg[key]
    with pytest.raises(ValueError, match=f"missing key '{key}'"):
        RelevanceModel.from_config(cfg)


def test_candidate_features_against_hand_computation() -> None:
    nan = np.nan
    f = candidate_features(
        ce_logit=np.array([2.0, -1.0, 30.0, 0.5]),
        bm25_score=np.array([12.0, nan, 6.0, 3.0]),
        bm25_rank=np.array([1, 0, 2, 3]),
        dense_score=np.array([0.5, 0.7, nan, 0.4]),
        dense_rank=np.array([2, 1, 0, 3]),
        fused_score=np.array([0.4, 0.3, 0.2, 0.1]),
    )
    assert set(f) == set(FEATURES)
    np.testing.assert_array_equal(f["ce_logit"], [2.0, -1.0, 20.0, 0.5])  # clipped at 20
    np.testing.assert_array_equal(f["ce_gap"], [-18.0, -21.0, 0.0, -19.5])
    np.testing.assert_array_equal(f["ce_max"], [20.0] * 4)
    # absent from BM25: the smallest score BM25 returned (3.0), rank n + 1 = 5
    np.testing.assert_array_equal(f["bm25_rel"], np.array([12.0, 3.0, 6.0, 3.0]) / 12.0)
    np.testing.assert_array_equal(f["bm25_log_rank"], np.log([1, 5, 2, 3]))
    np.testing.assert_array_equal(f["bm25_absent"], [0, 1, 0, 0])
    np.testing.assert_array_equal(f["bm25_best"], [np.log1p(12.0)] * 4)
    np.testing.assert_array_equal(f["dense_score"], [0.5, 0.7, 0.4, 0.4])
    np.testing.assert_allclose(f["dense_gap"], [-0.2, 0.0, -0.3, -0.3])
    np.testing.assert_array_equal(f["dense_log_rank"], np.log([2, 1, 5, 3]))
    np.testing.assert_array_equal(f["dense_absent"], [0, 0, 1, 0])
    np.testing.assert_array_equal(f["fused_log_rank"], np.log([1, 2, 3, 4]))  # given in fused order
    np.testing.assert_allclose(f["fused_rel"], [1.0, 0.75, 0.5, 0.25])
    # CE order [2, 0, 3, 1] (best first) against fused order [0, 1, 2, 3]
    ce_rank, fused_rank = np.array([2, 4, 1, 3]), np.array([1, 2, 3, 4])
    d2 = float(np.sum((ce_rank - fused_rank) ** 2))
    rho = 1 - 6 * d2 / (4 * (4**2 - 1))
    np.testing.assert_allclose(f["ce_agree"], [rho] * 4)
    np.testing.assert_allclose(f["ce_gap_x_agree"], f["ce_gap"] * rho)


def test_candidate_features_when_a_leg_returned_nothing() -> None:
    f = candidate_features(
        ce_logit=np.zeros(2),
        bm25_score=np.full(2, np.nan),
        bm25_rank=np.zeros(2, dtype=np.int32),
        dense_score=np.array([0.3, 0.2]),
        dense_rank=np.array([1, 2]),
    )
    np.testing.assert_array_equal(f["bm25_rel"], [0.0, 0.0])
    np.testing.assert_array_equal(f["bm25_absent"], [1.0, 1.0])
    np.testing.assert_array_equal(f["bm25_log_rank"], np.log([3, 3]))
    assert all(np.isfinite(v).all() for v in f.values())


def test_leg_depth_sets_the_rank_of_absent_candidates() -> None:
    args = {
        "ce_logit": [1.0, 0.0],
        "bm25_score": [5.0, np.nan],
        "bm25_rank": [7, 0],
        "dense_score": [np.nan, 0.4],
        "dense_rank": [0, 40],
    }
    f = candidate_features(**args, leg_depth=100)
    np.testing.assert_array_equal(f["bm25_log_rank"], np.log([7, 101]))
    np.testing.assert_array_equal(f["dense_log_rank"], np.log([101, 40]))
    # default: the largest given rank when it exceeds n
    np.testing.assert_array_equal(candidate_features(**args)["dense_log_rank"], np.log([41, 40]))
    with pytest.raises(ValueError, match="leg_depth 20"):
        candidate_features(**args, leg_depth=20)


def test_candidate_features_feed_the_model() -> None:
    names = ("ce_gap", "bm25_absent", "dense_log_rank")
    model = RelevanceModel(names, np.zeros(3), np.ones(3), np.array([1.0, -1.0, -0.5]), 0.0)
    f = candidate_features(
        ce_logit=[1.0, 0.0],
        bm25_score=[5.0, np.nan],
        bm25_rank=[1, 0],
        dense_score=[0.5, 0.4],
        dense_rank=[1, 2],
    )
    z = np.array([0.0, -1.0 - 1.0 - 0.5 * np.log(2)])
    np.testing.assert_allclose(model.predict_proba(f), 1 / (1 + np.exp(-z)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ce_logit": [np.nan, 0.0]}, "ce_logit"),
        ({"bm25_rank": [1]}, "bm25_rank has 1 entries"),
        ({"dense_rank": [-1, 1]}, "dense_rank"),
        ({"bm25_score": [np.inf, 1.0]}, "bm25_score"),
        ({"fused_rank": [0, 1]}, "fused_rank"),
        ({"ce_logit": [[0.0, 1.0]]}, "ce_logit must be a 1-D"),
    ],
)
def test_candidate_features_refuses_bad_input(kwargs: dict, match: str) -> None:
    base = {
        "ce_logit": [0.0, 1.0],
        "bm25_score": [2.0, 1.0],
        "bm25_rank": [1, 2],
        "dense_score": [0.5, 0.4],
        "dense_rank": [1, 2],
    }
    with pytest.raises(ValueError, match=match):
        candidate_features(**(base | kwargs))


def test_candidate_features_refuses_float_ranks() -> None:
    with pytest.raises(TypeError, match="bm25_rank"):
        candidate_features(
            ce_logit=[0.0], bm25_score=[1.0], bm25_rank=[1.5], dense_score=[0.1], dense_rank=[1]
        )


def test_shipped_cross_encoder_uses_the_learned_score():
    from secondopinion.gate import CandidateFeatures, relevance_model_for
    from secondopinion.relevance import LearnedRelevance
    from secondopinion.rerank import CrossEncoder

    model = relevance_model_for(CrossEncoder())
    assert isinstance(model, LearnedRelevance)
    n = 5
    features = CandidateFeatures(
        ce_logit=np.array([4.0, 1.0, -1.0, -3.0, -6.0], dtype=np.float32),
        bm25_rank=np.array([1, 2, 0, 3, 4], dtype=np.int32),
        bm25_score=np.array([12.0, 9.0, np.nan, 5.0, 4.0], dtype=np.float32),
        dense_rank=np.array([2, 1, 3, 0, 4], dtype=np.int32),
        dense_score=np.array([0.7, 0.72, 0.5, np.nan, 0.3], dtype=np.float32),
        fused_rank=np.arange(1, n + 1, dtype=np.int32),
        fused_score=np.linspace(0.033, 0.02, n).astype(np.float32),
    )
    p = model.score(features)
    assert p.dtype == np.float32 and p.shape == (n,)
    assert np.all((p > 0) & (p < 1))
    assert p[0] > p[-1]  # strong on every signal beats weak on every signal
