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
    """The shipped model in onnxruntime's Python API, given its shared tensors by hand."""
    directory = open_model_dir(None, kind)
    options = ort.SessionOptions()
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
    # One pair per call: dynamic int8 quantises activations per batch, so only
    # the same batch composition gives the same numbers on both paths.
    got = np.array([cross_encoder.predict([p], activation="none")[0] for p in pairs])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_embedder_vectors_are_unit_norm_and_match_onnxruntime(embedder):
    assert embedder.model_dir == default_model_dir(EMBEDDER)
    assert embedder.dimension == 384
    texts = [QUERY, RELEVANT, IRRELEVANT]
    vectors = np.concatenate([embedder.encode([t]) for t in texts])
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
        np.testing.assert_allclose(vectors[i], mean / np.linalg.norm(mean), atol=1e-4)

    # Meaning, not just shape: the query is closer to the relevant passage.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
