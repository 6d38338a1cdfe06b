"""Batch invariance and reranking latency of the shipped (or given) models.

Invariance, the issue's protocol: ``--pairs`` judged (query, relevant
abstract) pairs of a BEIR split are scored one call per pair; then, per thread
count and ``batch_tokens`` budget, ``--trials`` times, all of them together with
``--noise`` other pairs (random queries with passages cut to 50-2,000
characters), shuffled. The report is the largest difference between a pair's
logit alone and in company. The embedder gets the same test on the queries and
abstracts as texts (largest difference of a vector component).

Latency: for ``--queries`` judged queries, BM25's top ``--candidates``
documents (title + text) are reranked with ``CrossEncoder.predict`` (tokenising
included), once per thread count per query, the thread counts interleaved so
that background load hits them alike; p50 and p95 per thread count.

    python tools/measure_invariance.py --data ../shared/data/scifact --split train
    python tools/measure_invariance.py --data ... --skip-invariance --queries 40

Runs against whatever ``secondopinion`` is importable, so the same script
measures a build before and after a change.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Sequence

import numpy as np

from secondopinion import BM25Index, CrossEncoder, Embedder
from secondopinion.beir import BeirDataset, load_beir

BUDGETS = (256, 1024, 4096, 16384)


def judged_pairs(dataset: BeirDataset, count: int, rng: random.Random) -> list[tuple[str, str]]:
    position = {doc_id: i for i, doc_id in enumerate(dataset.corpus.ids)}
    texts = dataset.corpus.indexable_texts()
    pairs = [
        (dataset.queries[qid], texts[position[doc_id]])
        for qid, docs in dataset.qrels.items()
        for doc_id, grade in docs.items()
        if grade > 0 and doc_id in position
    ]
    return rng.sample(pairs, count)


def noise_pairs(dataset: BeirDataset, count: int, rng: random.Random) -> list[tuple[str, str]]:
    texts = dataset.corpus.indexable_texts()
    queries = list(dataset.queries.values())
    return [(rng.choice(queries), rng.choice(texts)[: rng.randint(50, 2000)]) for _ in range(count)]


def max_logit_shift(
    model_dir: str | None,
    pairs: list[tuple[str, str]],
    noise: list[tuple[str, str]],
    threads: Sequence[int],
    trials: int,
    rng: random.Random,
) -> dict[str, float]:
    alone = np.array(
        [CrossEncoder(model_dir, threads=1).predict([p], activation="none")[0] for p in pairs]
    )
    shifts: dict[str, float] = {}
    for t in threads:
        model = CrossEncoder(model_dir, threads=t)
        for budget in BUDGETS:
            worst = 0.0
            for _ in range(trials):
                company = [(i, p) for i, p in enumerate(pairs)] + [(-1, p) for p in noise]
                rng.shuffle(company)
                logits = model.predict([p for _, p in company], "none", batch_tokens=budget)
                for (i, _), logit in zip(company, logits, strict=True):
                    if i >= 0:
                        worst = max(worst, abs(float(logit) - float(alone[i])))
            shifts[f"threads={t} batch_tokens={budget}"] = worst
    return shifts


def max_vector_shift(
    model_dir: str | None,
    texts: list[str],
    noise: list[str],
    threads: Sequence[int],
    trials: int,
    rng: random.Random,
) -> dict[str, float]:
    alone = np.concatenate([Embedder(model_dir, threads=1).encode([t]) for t in texts])
    shifts: dict[str, float] = {}
    for t in threads:
        model = Embedder(model_dir, threads=t)
        for budget in BUDGETS:
            worst = 0.0
            for _ in range(trials):
                company = [(i, x) for i, x in enumerate(texts)] + [(-1, x) for x in noise]
                rng.shuffle(company)
                vectors = model.encode([x for _, x in company], batch_tokens=budget)
                for (i, _), vector in zip(company, vectors, strict=True):
                    if i >= 0:
                        worst = max(worst, float(np.max(np.abs(vector - alone[i]))))
            shifts[f"threads={t} batch_tokens={budget}"] = worst
    return shifts


def rerank_latency(
    model_dir: str | None,
    dataset: BeirDataset,
    queries: int,
    candidates: int,
    threads: Sequence[int],
    repeats: int,
) -> dict[str, dict[str, float]]:
    texts = dataset.corpus.indexable_texts()
    index = BM25Index.build(texts, show_progress=False)
    work = []
    for _, text in list(dataset.judged_queries())[:queries]:
        hits = index.search(text, k=candidates)
        work.append([(text, texts[i]) for i in hits.indices.tolist()])
    models = {t: CrossEncoder(model_dir, threads=t) for t in threads}
    for model in models.values():  # warm-up: the arena grows to its peak
        model.predict(work[0])
    samples: dict[int, list[float]] = {t: [] for t in threads}
    for _ in range(repeats):
        for pairs in work:
            for t, model in models.items():
                start = time.perf_counter()
                model.predict(pairs)
                samples[t].append((time.perf_counter() - start) * 1000)
    return {
        f"threads={t}": {
            "p50_ms": float(np.percentile(v, 50)),
            "p95_ms": float(np.percentile(v, 95)),
            "calls": len(v),
        }
        for t, v in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--cross-encoder", default=None)
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--noise", type=int, default=40)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--skip-invariance", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    threads = [int(t) for t in args.threads.split(",")]
    dataset = load_beir(args.data, args.split)
    rng = random.Random(args.seed)
    report: dict[str, object] = {"cpu": platform.processor() or platform.machine()}
    if not args.skip_invariance:
        pairs = judged_pairs(dataset, args.pairs, rng)
        noise = noise_pairs(dataset, args.noise, rng)
        shifts = max_logit_shift(args.cross_encoder, pairs, noise, threads, args.trials, rng)
        report["cross_encoder_max_logit_shift"] = shifts
        print("cross-encoder: largest |logit in company - logit alone|")
        for key, value in shifts.items():
            print(f"  {key:<28} {value:.3g}")
        texts = [q for q, _ in pairs] + [p for _, p in pairs]
        vectors = max_vector_shift(
            args.embedder, texts, [p for _, p in noise], threads, args.trials, rng
        )
        report["embedder_max_component_shift"] = vectors
        print("embedder: largest |component in company - component alone|")
        for key, value in vectors.items():
            print(f"  {key:<28} {value:.3g}")
    if not args.skip_latency:
        latency = rerank_latency(
            args.cross_encoder, dataset, args.queries, args.candidates, threads, args.repeats
        )
        report["rerank_latency"] = latency
        print(f"rerank {args.candidates} candidates (tokenising included), ms:")
        for key, value in latency.items():
            print(
                f"  {key:<10} p50 {value['p50_ms']:8.1f}  p95 {value['p95_ms']:8.1f}  "
                f"({value['calls']} calls)"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
