"""The models shipped inside the package: they load with no argument and behave.

Each model is also run through onnxruntime's Python API one text at a time (an
independent path: no C++ batching, pooling in numpy), so a packaging mistake
(wrong file, wrong config) fails here rather than as a silently worse ranking.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from secondopinion import CrossEncoder, Embedder
from secondopinion.model_dir import (
    CROSS_ENCODER,
    DEFAULT_MODELS_DIR,
    EMBEDDER,
    default_model_dir,
    open_model_dir,
)

QUERY = "Does vitamin D supplementation reduce respiratory infections?"
RELEVANT = (
    "In this randomised controlled trial, daily vitamin D supplementation reduced the "
    "incidence of acute respiratory tract infections compared with placebo."
)
IRRELEVANT = (
    "The bridge was opened in 1932 and carries eight lanes of traffic across the harbour "
    "between the city centre and the northern suburbs."
)


@pytest.fixture(scope="module")
def cross_encoder() -> CrossEncoder:
    return CrossEncoder()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def onnxruntime_session(kind: str) -> ort.InferenceSession:
    """The shipped model in onnxruntime's Python API, given its shared tensors by hand,
    one thread per Run as our sessions run."""
    directory = open_model_dir(None, kind)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    names = [name for name, _ in directory.external_initializers]
    values = [
        ort.OrtValue.ortvalue_from_numpy(np.load(f)) for _, f in directory.external_initializers
    ]
    options.add_external_initializers(names, values)
    return ort.InferenceSession(
        str(directory.model_file), options, providers=["CPUExecutionProvider"]
    )


def test_shipped_models_fit_in_30_mb_and_share_their_word_embeddings():
    files = [
        f for f in DEFAULT_MODELS_DIR.rglob("*") if f.is_file() and "__pycache__" not in f.parts
    ]
    assert sum(f.stat().st_size for f in files) <= 30_000_000
    shared = {
        kind: {n: Path(f).resolve() for n, f in open_model_dir(None, kind).external_initializers}
        for kind in (CROSS_ENCODER, EMBEDDER)
    }
    assert shared[CROSS_ENCODER] == shared[EMBEDDER] and len(shared[EMBEDDER]) == 3
    assert all(
        f.parent == DEFAULT_MODELS_DIR.resolve() / "shared" for f in shared[EMBEDDER].values()
    )


@pytest.mark.parametrize("kind", [CROSS_ENCODER, EMBEDDER])
def test_shipped_config_names_the_model_and_no_build_path(kind):
    config = json.loads((default_model_dir(kind) / "secondopinion.json").read_text())
    assert config["kind"] == kind and config["max_length"] == 256
    assert "source" not in config.get("quantization", {})
    if kind == CROSS_ENCODER:
        assert config["activation"] == "sigmoid"
        # calibrated from traces (tools/calibrate_default_floor.py), on the learned score
        assert 0.0 < config["floor"] < 1.0
        assert config["relevance"]["version"] == 1


def test_cross_encoder_ranks_the_relevant_passage_first(cross_encoder):
    assert cross_encoder.model_dir == default_model_dir(CROSS_ENCODER)
    logits = cross_encoder.predict([(QUERY, RELEVANT), (QUERY, IRRELEVANT)], activation="none")
    assert np.all(np.isfinite(logits))
    assert logits[0] > logits[1] + 1.0
    probabilities = cross_encoder.predict([(QUERY, RELEVANT), (QUERY, IRRELEVANT)])
    assert np.all((probabilities > 0) & (probabilities < 1))
    assert probabilities[0] > probabilities[1]


def test_cross_encoder_matches_onnxruntime_python(cross_encoder):
    pairs = [(QUERY, RELEVANT), (QUERY, IRRELEVANT), ("aspirin", "Aspirin inhibits COX-1.")]
    batch = cross_encoder.tokenize(pairs)
    session = onnxruntime_session(CROSS_ENCODER)
    expected = []
    for i in range(len(pairs)):
        span = slice(batch.offsets[i], batch.offsets[i + 1])
        ids = batch.ids[span][None, :]
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": batch.type_ids[span][None, :],
        }
        expected.append(session.run(["logits"], feed)[0][0, 0])
    # All three in one call: each pair is its own Run, as in the reference.
    got = cross_encoder.predict(pairs, activation="none")
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_embedder_vectors_are_unit_norm_and_match_onnxruntime(embedder):
    assert embedder.model_dir == default_model_dir(EMBEDDER)
    assert embedder.dimension == 384
    texts = [QUERY, RELEVANT, IRRELEVANT]
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384) and np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    session = onnxruntime_session(EMBEDDER)
    batch = embedder.tokenize(texts)
    for i in range(len(texts)):
        ids = batch.ids[batch.offsets[i] : batch.offsets[i + 1]][None, :]
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        states = session.run(None, feed)[0][0].astype(np.float64)
        mean = states.mean(axis=0)
        np.testing.assert_allclose(vectors[i], mean / np.linalg.norm(mean), atol=1e-5)

    # Meaning, not just shape: the query is closer to the relevant passage.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def _company(rng: np.random.Generator, count: int) -> list[str]:
    """Passages of 50-2,000 characters cut from the demo corpus and the texts above."""
    from secondopinion.beir import load_demo_corpus

    pool = [*load_demo_corpus().indexable_texts(), RELEVANT, IRRELEVANT]
    words = " ".join(pool).split()
    out = []
    for _ in range(count):
        start = int(rng.integers(0, len(words)))
        text = " ".join(words[start:] + words[:start])
        out.append(text[: int(rng.integers(50, 2001))])
    return out


def test_shipped_models_score_a_pair_the_same_in_any_company():
    """The issue's protocol, small: pairs alone, then shuffled among other passages at
    budgets of 256 to 16,384 tokens and 1 or 2 threads. Dynamic int8 (a scale per
    Run) made a logit move by up to 0.85 when pairs shared a padded batch."""
    rng = np.random.default_rng(14)
    pairs = [(QUERY, RELEVANT), (QUERY, IRRELEVANT), ("aspirin", "Aspirin inhibits COX-1.")]
    texts = [QUERY, RELEVANT, IRRELEVANT]
    alone_logits = np.array([CrossEncoder(threads=1).predict([p], "none")[0] for p in pairs])
    alone_vectors = np.concatenate([Embedder(threads=1).encode([t]) for t in texts])
    for threads, budget in [(1, 256), (2, 1024), (2, 16_384), (1, 4096)]:
        ce, emb = CrossEncoder(threads=threads), Embedder(threads=threads)
        company = [(QUERY, text) for text in _company(rng, 12)]
        mixed = [(i, p) for i, p in enumerate(pairs)] + [(-1, p) for p in company]
        order = rng.permutation(len(mixed))
        logits = ce.predict([mixed[k][1] for k in order], "none", batch_tokens=budget)
        for k, logit in zip(order, logits, strict=True):
            if mixed[k][0] >= 0:
                assert abs(logit - alone_logits[mixed[k][0]]) <= 1e-5, (threads, budget)
        mixed_texts = [(i, t) for i, t in enumerate(texts)] + [(-1, t) for t in _company(rng, 12)]
        order = rng.permutation(len(mixed_texts))
        vectors = emb.encode([mixed_texts[k][1] for k in order], batch_tokens=budget)
        for k, vector in zip(order, vectors, strict=True):
            if mixed_texts[k][0] >= 0:
                assert np.max(np.abs(vector - alone_vectors[mixed_texts[k][0]])) <= 1e-5
