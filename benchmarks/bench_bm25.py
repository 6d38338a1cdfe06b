"""BM25 build time and single-thread query throughput against bm25s and rank_bm25.

Same machine, same run, same corpora (BEIR SciFact and NFCorpus from
``../shared/data``; skipped when absent), same analysis where the baseline
allows it (Lucene's English stop set, Snowball Porter via PyStemmer, title and
text joined), top-k = 100, one query at a time, tokenising included:

* ours:      ``BM25Index.search(query, k=100)`` (returns ``Hits``);
* bm25s:     ``bm25s.tokenize(query, ...)`` then ``retriever.retrieve(..., k=100,
             n_threads=1)``, ``method="lucene"``, k1 0.9, b 0.4;
* rank_bm25: ``BM25Okapi.get_scores`` over PyStemmer tokens plus a numpy top-100,
             on the first ``RANK_BM25_QUERIES`` queries only (it scores every
             document in Python; it is slow).

Queries/s and the ratios are printed at the end of the module and stored in
each benchmark's ``extra_info``. Run briefly on a shared machine::

    .venv/bin/python -m pytest benchmarks/bench_bm25.py --benchmark-min-rounds=3 \
        --benchmark-max-time=0.5 --benchmark-columns=median,rounds
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from shared_data import data_dir

from secondopinion import BM25Index
from secondopinion.bm25 import ENGLISH_STOPWORDS

K = 100
RANK_BM25_QUERIES = 20
DATASETS = {"scifact": "train", "nfcorpus": "dev"}


DATA = data_dir(*DATASETS)
pytestmark = pytest.mark.skipif(
    DATA is None,
    reason="BEIR scifact/ and nfcorpus/ not found in ../shared/data (or $SECONDOPINION_DATA)",
)

# dataset -> system -> {"build_s": ..., "qps": ...}, printed at module teardown
RESULTS: dict[str, dict[str, dict[str, float]]] = {}


def _load(name: str) -> tuple[list[dict], list[str]]:
    assert DATA is not None
    folder = DATA / name
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    with (folder / "qrels" / f"{DATASETS[name]}.tsv").open(encoding="utf-8") as f:
        qids = {line.split("\t")[0] for line in list(f)[1:]}
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        queries = [q["text"] for q in map(json.loads, f) if q["_id"] in qids]
    return corpus, queries


@pytest.fixture(scope="module", params=list(DATASETS))
def dataset(request):
    corpus, queries = _load(request.param)
    texts = [f"{d.get('title') or ''} {d.get('text') or ''}" for d in corpus]
    return request.param, corpus, texts, queries


@pytest.fixture(scope="module")
def stemmer():
    import Stemmer

    return Stemmer.Stemmer("porter")


def _record(name: str, system: str, key: str, value: float, benchmark) -> None:
    RESULTS.setdefault(name, {}).setdefault(system, {})[key] = value
    benchmark.extra_info[key] = value


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not RESULTS:
        return
    with capture.global_and_fixture_disabled():
        _write_summary(reporter)


def _write_summary(reporter) -> None:
    reporter.write_line("")
    reporter.write_line("BM25 summary (medians; the benchmark table shows the spread)")
    for name, systems in RESULTS.items():
        ours = systems.get("ours", {})
        for system, r in systems.items():
            line = f"  {name:<9} {system:<10}"
            if "build_s" in r:
                line += f" build {r['build_s'] * 1e3:8.1f} ms"
            if "qps" in r:
                line += f"   {r['qps']:10.1f} queries/s"
                if system != "ours" and "qps" in ours:
                    line += f"   ours is {ours['qps'] / r['qps']:.1f}x"
            reporter.write_line(line)


# ------------------------------------------------------------------ build


def test_build_ours_1_thread(benchmark, dataset):
    name, corpus, _, _ = dataset
    benchmark.pedantic(lambda: BM25Index.build(corpus, threads=1), rounds=3, iterations=1)
    _record(name, "ours", "build_s", benchmark.stats.stats.median, benchmark)


def test_build_ours_all_threads(benchmark, dataset):
    name, corpus, _, _ = dataset
    benchmark.pedantic(lambda: BM25Index.build(corpus), rounds=3, iterations=1)
    _record(name, "ours-mt", "build_s", benchmark.stats.stats.median, benchmark)


def _bm25s_index(texts, stemmer):
    import bm25s

    tokens = bm25s.tokenize(
        texts, stopwords=list(ENGLISH_STOPWORDS), stemmer=stemmer, show_progress=False
    )
    retriever = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    retriever.index(tokens, show_progress=False)
    return retriever


def test_build_bm25s(benchmark, dataset, stemmer):
    name, _, texts, _ = dataset
    benchmark.pedantic(lambda: _bm25s_index(texts, stemmer), rounds=3, iterations=1)
    _record(name, "bm25s", "build_s", benchmark.stats.stats.median, benchmark)


_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token pattern


def _rank_bm25_tokens(text: str, stemmer) -> list[str]:
    stop = set(ENGLISH_STOPWORDS)
    return stemmer.stemWords([w for w in _WORD.findall(text.lower()) if w not in stop])


def test_build_rank_bm25(benchmark, dataset, stemmer):
    from rank_bm25 import BM25Okapi

    name, _, texts, _ = dataset

    def build():
        return BM25Okapi([_rank_bm25_tokens(t, stemmer) for t in texts], k1=0.9, b=0.4)

    benchmark.pedantic(build, rounds=1, iterations=1)
    _record(name, "rank_bm25", "build_s", benchmark.stats.stats.median, benchmark)


# ------------------------------------------------------------------ queries


def test_queries_ours(benchmark, dataset):
    name, corpus, _, queries = dataset
    index = BM25Index.build(corpus)

    def run():
        for q in queries:
            index.search(q, K)

    benchmark(run)
    _record(name, "ours", "qps", len(queries) / benchmark.stats.stats.median, benchmark)


def test_queries_bm25s(benchmark, dataset, stemmer):
    import bm25s

    name, _, texts, queries = dataset
    retriever = _bm25s_index(texts, stemmer)
    stop = list(ENGLISH_STOPWORDS)

    def run():
        for q in queries:
            tokens = bm25s.tokenize(q, stopwords=stop, stemmer=stemmer, show_progress=False)
            retriever.retrieve(tokens, k=K, show_progress=False, n_threads=1)

    benchmark.pedantic(run, rounds=3, iterations=1)
    _record(name, "bm25s", "qps", len(queries) / benchmark.stats.stats.median, benchmark)


def test_queries_rank_bm25(benchmark, dataset, stemmer):
    from rank_bm25 import BM25Okapi

    name, _, texts, queries = dataset
    model = BM25Okapi([_rank_bm25_tokens(t, stemmer) for t in texts], k1=0.9, b=0.4)
    few = queries[:RANK_BM25_QUERIES]

    def run():
        for q in few:
            scores = model.get_scores(_rank_bm25_tokens(q, stemmer))
            top = np.argpartition(-scores, K)[:K]
            top[np.argsort(-scores[top], kind="stable")]

    benchmark.pedantic(run, rounds=3, iterations=1)
    _record(name, "rank_bm25", "qps", len(few) / benchmark.stats.stats.median, benchmark)
