"""Rerank workloads from BEIR SciFact: what a cross-encoder is asked to score.

Two workloads over the same train queries and the same BM25 candidates:

- ``abstracts``: the top-100 BM25 documents of each query (title + " " + text),
  scored at max_length 256. Most of them are cut at 256 tokens, so their padded
  lengths are nearly equal.
- ``rag-chunks``: those same 100 documents cut into chunks of a random 1-8
  sentences (seeded per document), of which 100 per query are drawn (seeded,
  kept in retrieval order), scored at max_length 512. Lengths range from a few
  dozen to several hundred tokens: what RAG systems rerank, and where batching
  in arrival order pads heavily.

BM25 here is bm25s (English stop words, Snowball English stemmer when PyStemmer
is installed), so the benchmark does not depend on the project's own BM25.
Built workloads are cached as JSON; the cache key holds every parameter.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORKLOADS = {"abstracts": 256, "rag-chunks": 512}  # name -> max_length
CANDIDATES = 100
MAX_SENTENCES = 8
SEED = 20240611
_CACHE_VERSION = 1
# A sentence ends at . ! or ? followed by space and an upper-case letter, digit
# or bracket; good enough for abstracts, and deterministic.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


@dataclass(frozen=True)
class RerankQuery:
    query_id: str
    text: str
    passage_ids: tuple[str, ...]
    passages: tuple[str, ...]

    def pairs(self) -> list[tuple[str, str]]:
        return [(self.text, passage) for passage in self.passages]


@dataclass(frozen=True)
class Workload:
    name: str
    max_length: int
    queries: tuple[RerankQuery, ...]

    @property
    def n_pairs(self) -> int:
        return sum(len(q.passages) for q in self.queries)


def find_data_dir() -> Path:
    """SciFact in BEIR format: $SECONDOPINION_SCIFACT, else a shared/ beside the checkout."""
    env = os.environ.get("SECONDOPINION_SCIFACT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for base in (here.parent, here.parent.parent):
        candidate = base / "shared" / "data" / "scifact"
        if (candidate / "corpus.jsonl").is_file():
            return candidate
    raise FileNotFoundError(
        "SciFact not found beside the checkout (../shared/data/scifact); "
        "set SECONDOPINION_SCIFACT to its directory"
    )


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def chunk_document(doc_id: str, text: str, seed: int = SEED) -> list[str]:
    """Consecutive runs of 1..MAX_SENTENCES sentences, sizes drawn per document.

    The generator is seeded from (seed, doc_id), so a document is cut the same
    way whichever queries retrieve it.
    """
    sentences = split_sentences(text)
    rng = np.random.default_rng([seed, zlib.crc32(doc_id.encode())])
    chunks = []
    start = 0
    while start < len(sentences):
        size = int(rng.integers(1, MAX_SENTENCES + 1))
        chunks.append(" ".join(sentences[start : start + size]))
        start += size
    return chunks


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _train_query_ids(data_dir: Path, n_queries: int) -> list[str]:
    """The first n distinct query ids of qrels/train.tsv, in file order."""
    ids: list[str] = []
    with (data_dir / "qrels" / "train.tsv").open(encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            qid = line.split("\t", 1)[0]
            if qid not in ids:
                ids.append(qid)
                if len(ids) == n_queries:
                    break
    if len(ids) < n_queries:
        raise ValueError(f"n_queries={n_queries} but train.tsv has only {len(ids)} queries")
    return ids


def _bm25_top(data_dir: Path, n_queries: int) -> tuple[list[dict], dict[str, str], list]:
    """Queries, document texts by id, and each query's top CANDIDATES document ids."""
    import bm25s

    try:
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
    except ImportError:
        stemmer = None
    corpus = _read_jsonl(data_dir / "corpus.jsonl")
    doc_ids = [d["_id"] for d in corpus]
    texts = {d["_id"]: f"{d.get('title', '')} {d['text']}".strip() for d in corpus}
    queries_by_id = {q["_id"]: q for q in _read_jsonl(data_dir / "queries.jsonl")}
    queries = [queries_by_id[qid] for qid in _train_query_ids(data_dir, n_queries)]

    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(
            [texts[i] for i in doc_ids], stopwords="en", stemmer=stemmer, show_progress=False
        ),
        show_progress=False,
    )
    tokens = bm25s.tokenize(
        [q["text"] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False
    )
    top, _ = retriever.retrieve(tokens, k=CANDIDATES, show_progress=False)
    return queries, texts, [[doc_ids[j] for j in row] for row in top]


def _build(n_queries: int, data_dir: Path, seed: int) -> dict[str, list[dict]]:
    queries, texts, tops = _bm25_top(data_dir, n_queries)
    abstracts, chunks = [], []
    for index, (query, top) in enumerate(zip(queries, tops, strict=True)):
        abstracts.append(
            {
                "query_id": query["_id"],
                "text": query["text"],
                "passage_ids": top,
                "passages": [texts[d] for d in top],
            }
        )
        pool = [
            (f"{d}#{k}", chunk)
            for d in top
            for k, chunk in enumerate(chunk_document(d, texts[d], seed))
        ]
        rng = np.random.default_rng([seed, index])
        keep = np.sort(rng.choice(len(pool), size=min(CANDIDATES, len(pool)), replace=False))
        chunks.append(
            {
                "query_id": query["_id"],
                "text": query["text"],
                "passage_ids": [pool[i][0] for i in keep],
                "passages": [pool[i][1] for i in keep],
            }
        )
    return {"abstracts": abstracts, "rag-chunks": chunks}


def load_workload(
    name: str,
    n_queries: int,
    cache_dir: Path,
    data_dir: Path | None = None,
    seed: int = SEED,
) -> Workload:
    """The named workload for the first ``n_queries`` train queries, built on first use."""
    if name not in WORKLOADS:
        raise ValueError(f"name must be one of {sorted(WORKLOADS)}, got {name!r}")
    if n_queries < 1:
        raise ValueError(f"n_queries must be at least 1, got {n_queries}")
    path = Path(cache_dir) / f"scifact-v{_CACHE_VERSION}-q{n_queries}-s{seed}.json"
    if path.is_file():
        built = json.loads(path.read_text(encoding="utf-8"))
    else:
        built = _build(n_queries, data_dir or find_data_dir(), seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(built), encoding="utf-8")
        tmp.replace(path)
    queries = tuple(
        RerankQuery(q["query_id"], q["text"], tuple(q["passage_ids"]), tuple(q["passages"]))
        for q in built[name]
    )
    return Workload(name, WORKLOADS[name], queries)
