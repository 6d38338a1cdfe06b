"""Per-query latency of the whole pipeline on SciFact, split by stage.

    .venv/bin/python -m pytest benchmarks/bench_pipeline.py \\
        --benchmark-columns=median,ops,rounds --benchmark-group-by=group

100 candidates per query, the shipped int8 models, one query at a time on one
Python thread (the cross-encoder's own threads: all cores), as a server thread
sees it. Two rows in the same run:

* ``search``: ``Pipeline.search`` end to end (BM25, embed, HNSW, fuse,
  tokenise, rerank, gate), cycling over the SciFact train queries;
* ``rerank only``: ``CrossEncoder.predict`` on exactly the candidates the
  pipeline reranked for the same queries: the floor the rest must stay near.

Each round's per-stage timings (``Evidence.timings_ms``) are collected; the
stage table (p50, p95, share of the mean total) is printed at the end and
stored in the benchmark's ``extra_info``. Issue 4's bar: everything except the
cross-encoder (tokenise + rerank) is at most 10% of the total.

Building the SciFact pipeline encodes 5,183 abstracts (minutes on 2 cores); it
is saved to ``build/bench-cache/pipeline-scifact`` (or
``$SECONDOPINION_BENCH_CACHE``) and loaded on later runs. Skipped when the
data is absent (``../shared/data`` or ``$SECONDOPINION_DATA``).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from shared_data import data_dir

from secondopinion import CrossEncoder
from secondopinion.beir import load_beir
from secondopinion.pipeline import Pipeline

CANDIDATES = 100
QUERIES = int(os.environ.get("SECONDOPINION_BENCH_PIPELINE_QUERIES", "50"))
STAGES = ("bm25", "embed", "hnsw", "fuse", "tokenize", "rerank", "gate", "total")
CROSS_ENCODER = ("tokenize", "rerank")


DATA = data_dir("scifact")
pytestmark = pytest.mark.skipif(
    DATA is None, reason="BEIR scifact/ not found in ../shared/data (or $SECONDOPINION_DATA)"
)


@pytest.fixture(scope="module")
def scifact(bench_cache: Path) -> tuple[Pipeline, list[str]]:
    assert DATA is not None
    dataset = load_beir(DATA / "scifact", "train")
    queries = [text for _, text in dataset.judged_queries()][:QUERIES]
    saved = bench_cache / "pipeline-scifact"
    if saved.exists():
        return Pipeline.load(saved), queries
    corpus = dataset.corpus
    docs = [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts, strict=True)
    ]
    pipe = Pipeline.from_corpus(docs, show_progress=True)
    pipe.save(saved)
    return pipe, queries


def _stage_table(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    mean_total = float(np.mean([s["total"] for s in samples]))
    table = {}
    for stage in STAGES:
        values = np.asarray([s.get(stage, 0.0) for s in samples])
        table[stage] = {
            "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p95_ms": round(float(np.percentile(values, 95)), 3),
            "share": round(float(values.mean()) / mean_total, 4),
        }
    return table


@pytest.mark.benchmark(group="pipeline scifact 100 candidates")
def test_search(benchmark, scifact):
    pipe, queries = scifact
    for text in queries[:3]:  # warm-up: sessions, arenas, page cache
        pipe.search(text, candidates=CANDIDATES)
    cycle = itertools.cycle(queries)
    samples: list[dict[str, float]] = []

    def one_query() -> None:
        samples.append(pipe.search(next(cycle), candidates=CANDIDATES).timings_ms)

    benchmark.pedantic(one_query, rounds=len(queries), iterations=1)
    table = _stage_table(samples)
    outside = sum(table[s]["share"] for s in STAGES[:-1] if s not in CROSS_ENCODER)
    benchmark.extra_info["stages"] = table
    benchmark.extra_info["outside_cross_encoder_share"] = round(outside, 4)
    print(f"\n{len(samples)} queries, {CANDIDATES} candidates (ms):")
    print(f"{'stage':<9} {'p50':>9} {'p95':>9} {'share':>7}")
    for stage, row in table.items():
        print(f"{stage:<9} {row['p50_ms']:9.2f} {row['p95_ms']:9.2f} {row['share']:7.1%}")
    print(f"everything but the cross-encoder: {outside:.1%} of the mean total")
    assert all(s["total"] > 0 for s in samples)


@pytest.mark.benchmark(group="pipeline scifact 100 candidates")
def test_rerank_only(benchmark, scifact):
    pipe, queries = scifact
    encoder = CrossEncoder()
    workloads = []
    for text in queries:
        result = pipe.search(text, candidates=CANDIDATES)
        passages = [f"{c.title} {c.text}".strip() if c.title else c.text for c in result.candidates]
        workloads.append([(text, p) for p in passages])
    encoder.predict(workloads[0])
    cycle = itertools.cycle(workloads)
    benchmark.pedantic(lambda: encoder.predict(next(cycle)), rounds=len(workloads), iterations=1)
