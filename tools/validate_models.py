"""Measure exported models on the validation queries: quality and CPU speed.

    python tools/validate_models.py --train-log build/cross_encoder/train_log.json \\
        --embedder fp32=build/models/embedder-fp32 --embedder int8=build/models/embedder-int8 \\
        --cross-encoder L4-fp32=build/models/ce-L4-fp32 \\
        --cross-encoder L4-int8=build/models/ce-L4-int8 --out build/validation.json

The validation queries are the ones the training run held out (their ids are in
its ``train_log.json``): SciFact train queries and NFCorpus dev queries. For
each dataset the candidates are the top 100 of a reciprocal-rank fusion of BM25
(``secondopinion.BM25Index``, top 100) and dense retrieval (the first
``--embedder``, exact cosine over the whole corpus in numpy, top 100), the same
first stage the training run validated on. Reported per dataset:

* nDCG@10 of BM25, of each embedder alone (also over every judged query of the
  split, which the untouched embedder never trained on) and of the fused first stage;
* each embedder's corpus encoding time (cached under ``--cache``, keyed by the
  model file's hash, so a rerun does not re-encode);
* each cross-encoder's nDCG@10 reranking those candidates, its pairs/s, and for
  a label ``NAME-int8...`` with a ``NAME-fp32`` twin, the mean and max
  |probability difference| between the two on the same pairs.

``--max-docs`` shrinks each corpus (the judged documents of the chosen queries
plus a seeded random sample of the rest) when the CPU is too slow for the full
one; the numbers are then only comparable with each other, not with full-corpus
ones.

Everything runs through the package's own runtime (``CrossEncoder``,
``Embedder``), so the speeds are what a user gets on this CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from secondopinion import BM25Index, CrossEncoder, Embedder
from secondopinion.beir import BeirDataset, Corpus, load_beir
from secondopinion.fusion import fuse_rrf
from secondopinion.hits import Hits
from secondopinion.metrics import Judgements, evaluate
from secondopinion.model_dir import open_model_dir
from secondopinion.rerank import logits_to_probabilities

#: The split each dataset's validation queries come from.
SPLITS = {"scifact": "train", "nfcorpus": "dev"}
DEPTH = 100


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def labelled(values: list[str], flag: str) -> list[tuple[str, Path]]:
    """``LABEL=DIR`` arguments as (label, path), labels unique."""
    out: list[tuple[str, Path]] = []
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"{flag} takes LABEL=DIR, got {value!r}")
        if label in {x for x, _ in out}:
            raise SystemExit(f"{flag}: label {label!r} given twice")
        out.append((label, Path(path)))
    return out


def subsample(corpus: Corpus, keep: set[str], n: int, seed: int) -> Corpus:
    """The documents in ``keep`` plus random others, ``n`` in all, in corpus order."""
    others = [i for i, d in enumerate(corpus.ids) if d not in keep]
    extra = max(0, n - (len(corpus) - len(others)))
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(others, size=min(extra, len(others)), replace=False).tolist())
    rows = [i for i, d in enumerate(corpus.ids) if d in keep or i in chosen]
    return Corpus(
        ids=[corpus.ids[i] for i in rows],
        titles=[corpus.titles[i] for i in rows],
        texts=[corpus.texts[i] for i in rows],
    )


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def corpus_embeddings(
    embedder: Embedder, model_dir: Path, dataset: str, texts: list[str], cache: Path
) -> tuple[np.ndarray, float]:
    """The corpus' embeddings and the seconds encoding took (measured once, then cached)."""
    docs = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    # The weights a model keeps outside model.onnx (external_initializers) count too.
    external = open_model_dir(model_dir, "embedder").external_initializers
    files = [model_dir / "model.onnx"] + [Path(f) for _, f in external]
    model = hashlib.sha256("".join(file_hash(f) for f in files).encode()).hexdigest()[:16]
    key = f"{dataset}-{docs}-{model}-{embedder.max_length}"
    vectors, meta = cache / f"{key}.npy", cache / f"{key}.json"
    if vectors.is_file() and meta.is_file():
        return np.load(vectors), float(json.loads(meta.read_text())["encode_s"])
    start = time.perf_counter()
    emb = embedder.encode(texts)
    seconds = time.perf_counter() - start
    cache.mkdir(parents=True, exist_ok=True)
    np.save(vectors, emb)
    meta.write_text(json.dumps({"encode_s": seconds, "docs": len(texts), "model": str(model_dir)}))
    return emb, seconds


def dense_top(queries: np.ndarray, corpus: np.ndarray, ids: np.ndarray, k: int) -> list[Hits]:
    """Exact cosine top-k (embeddings are unit-norm), ties by lower index."""
    sims = queries @ corpus.T
    out = []
    for row in sims:
        order = np.lexsort((np.arange(len(row)), -row))[:k]
        out.append(Hits(order.astype(np.int64), row[order].astype(np.float32), ids[order]))
    return out


def ndcg(run: dict[str, np.ndarray], judgements: Judgements) -> float:
    return evaluate(run, judgements).summary()["ndcg@10"]


def validate_dataset(
    name: str,
    data: BeirDataset,
    qids: list[str],
    ce_qids: int,
    embedders: list[tuple[str, Path]],
    cross_encoders: list[tuple[str, Path]],
    args: argparse.Namespace,
) -> dict:
    corpus = data.corpus
    if args.max_docs:
        keep = {d for q in qids for d in data.qrels[q]}
        corpus = subsample(corpus, keep, args.max_docs, seed=0)
    ids = np.asarray(corpus.ids, dtype=object)
    texts = corpus.indexable_texts()
    qrels = {q: data.qrels[q] for q in qids}
    judgements = Judgements(qrels, corpus.ids)
    queries = [data.queries[q] for q in qids]
    res: dict = {"queries": len(qids), "docs": len(corpus)}

    log(f"{name}: BM25 over {len(corpus)} docs")
    index = BM25Index.build(texts, ids=corpus.ids)
    sparse = [index.search(q, k=DEPTH) for q in queries]
    res["bm25"] = ndcg(dict(zip(qids, sparse, strict=True)), judgements)

    dense_by_label: dict[str, list[Hits]] = {}
    res["embedders"] = {}
    for label, path in embedders:
        emb = Embedder(path, threads=args.threads, max_length=args.embed_max_length)
        log(f"{name}: encoding corpus with {label}")
        doc_vecs, seconds = corpus_embeddings(emb, path, name, texts, args.cache)
        hits = dense_top(emb.encode(queries), doc_vecs, ids, DEPTH)
        dense_by_label[label] = hits
        res["embedders"][label] = {
            "ndcg@10": ndcg(dict(zip(qids, hits, strict=True)), judgements),
            "corpus_encode_s": seconds,
            "docs_per_s": len(texts) / seconds,
        }
        if not args.max_docs:
            # The embedder was trained on none of the split's queries, so all
            # of them count: four times the validation queries on SciFact, and
            # a difference between two encoders that validation alone cannot
            # tell from noise (two encodings at cosine 0.997 moved its 200
            # queries by 0.011 nDCG@10).
            every = sorted(data.qrels)
            every_vecs = emb.encode([data.queries[q] for q in every])
            every_hits = dense_top(every_vecs, doc_vecs, ids, DEPTH)
            every_judged = Judgements({q: data.qrels[q] for q in every}, corpus.ids)
            res["embedders"][label]["all_judged_queries"] = len(every)
            res["embedders"][label]["ndcg@10_all_judged"] = ndcg(
                dict(zip(every, every_hits, strict=True)), every_judged
            )
        log(f"{name}: {label} {res['embedders'][label]}")

    candidate_label = embedders[0][0]
    fused = [
        fuse_rrf([s, d], limit=DEPTH)
        for s, d in zip(sparse, dense_by_label[candidate_label], strict=True)
    ]
    cands = {q: f.indices for q, f in zip(qids, fused, strict=True)}
    res["stage1"] = ndcg(cands, judgements)
    res["stage1_embedder"] = candidate_label
    res["recall@100_stage1"] = evaluate(cands, judgements).summary()["recall@100"]

    ce_q = qids[:ce_qids]
    if not cross_encoders or not ce_q:
        return res
    ce_judgements = Judgements({q: qrels[q] for q in ce_q}, corpus.ids)
    res["ce_queries"] = len(ce_q)
    res["stage1_on_ce_queries"] = ndcg({q: cands[q] for q in ce_q}, ce_judgements)
    pairs = [(data.queries[q], texts[int(d)]) for q in ce_q for d in cands[q]]
    bounds = np.cumsum([0] + [len(cands[q]) for q in ce_q])
    logits_by_label: dict[str, np.ndarray] = {}
    res["cross_encoders"] = {}
    for label, path in cross_encoders:
        ce = CrossEncoder(path, threads=args.threads, max_length=args.ce_max_length)
        ce.predict(pairs[:32])  # warm-up: session start-up is not part of the rate
        log(f"{name}: {label} on {len(pairs)} pairs")
        start = time.perf_counter()
        logits = ce.predict(pairs, activation="none")
        seconds = time.perf_counter() - start
        logits_by_label[label] = logits
        run = {}
        for i, q in enumerate(ce_q):
            sc = logits[bounds[i] : bounds[i + 1]]
            run[q] = cands[q][np.argsort(-sc, kind="stable")]
        entry = {
            "ndcg@10": ndcg(run, ce_judgements),
            "pairs": len(pairs),
            "seconds": seconds,
            "pairs_per_s": len(pairs) / seconds,
            "max_length": ce.max_length,
        }
        stem, _, precision = label.partition("-")
        twin = f"{stem}-fp32" if precision.startswith("int8") else None
        if twin in logits_by_label:
            dp = np.abs(
                logits_to_probabilities(logits).astype(np.float64)
                - logits_to_probabilities(logits_by_label[twin])
            )
            entry["vs_fp32_mean_abs_dprob"] = float(dp.mean())
            entry["vs_fp32_max_abs_dprob"] = float(dp.max())
            entry["vs_fp32_max_abs_dlogit"] = float(np.abs(logits - logits_by_label[twin]).max())
        res["cross_encoders"][label] = entry
        log(f"{name}: {label} {entry}")
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--train-log", type=Path, required=True, help="train_log.json naming the validation ids"
    )
    parser.add_argument(
        "--embedder",
        action="append",
        default=[],
        help="LABEL=DIR, repeatable; the first one builds the dense half of stage 1",
    )
    parser.add_argument("--cross-encoder", action="append", default=[], help="LABEL=DIR")
    parser.add_argument("--datasets", nargs="+", default=sorted(SPLITS), choices=sorted(SPLITS))
    parser.add_argument(
        "--queries",
        type=int,
        default=0,
        help="use only the first N validation queries (sorted ids) of each dataset; 0: all",
    )
    parser.add_argument(
        "--ce-queries",
        nargs="+",
        default=[],
        help="DATASET=N: rerank only the first N of its queries (CPU time); default all",
    )
    parser.add_argument(
        "--max-docs", type=int, default=0, help="shrink each corpus to N docs (see above); 0: all"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ce-max-length", type=int, default=None)
    parser.add_argument("--embed-max-length", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=Path("build/validate_cache"))
    parser.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    args = parser.parse_args(argv)
    embedders = labelled(args.embedder, "--embedder")
    cross_encoders = labelled(args.cross_encoder, "--cross-encoder")
    if not embedders:
        raise SystemExit("give at least one --embedder (it builds the dense half of stage 1)")
    limits = {k: int(v) for k, _, v in (x.partition("=") for x in args.ce_queries)}

    val_ids = json.loads(args.train_log.read_text())["data"]["val_query_ids"]
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    for name in args.datasets:
        qids = sorted(val_ids[name])
        if args.queries:
            qids = qids[: args.queries]
        data = load_beir(args.data / name, split=SPLITS[name])
        missing = [q for q in qids if q not in data.qrels]
        if missing:
            raise SystemExit(f"{name}: {len(missing)} validation ids not in {SPLITS[name]} qrels")
        results[name] = validate_dataset(
            name, data, qids, limits.get(name, len(qids)), embedders, cross_encoders, args
        )
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
