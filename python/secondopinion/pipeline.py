"""The whole two-stage pipeline: hybrid retrieval, cross-encoder rerank, gate.

>>> pipe = Pipeline.from_corpus(documents)           # doctest: +SKIP
>>> result = pipe.search("how much ibuprofen for a 6 year old")  # doctest: +SKIP
>>> if result: ... result.chunks ...  else: ... result.reason ...  # doctest: +SKIP

``search`` returns :class:`~secondopinion.gate.Evidence` or
:class:`~secondopinion.gate.Refusal`, each with every reranked candidate's
provenance (BM25, dense and fused rank and score, cross-encoder logit) and the
time each stage took, in milliseconds: ``bm25`` (query analysis and BM25),
``embed``, ``hnsw``, ``fuse``, ``tokenize``, ``rerank``, ``gate`` and ``total``.

A saved pipeline is a folder::

    manifest.json   format, versions, models, parameters, checksums
    docs.jsonl      one {"id", "title", "text"} per line, in index order
    bm25.idx        the BM25 index (versioned and checksummed itself)
    dense.hnsw      the HNSW graph; dense.json its ids, parameters, checksum

The models are not copied: :meth:`Pipeline.load` takes them as arguments
(default: the package's), and refuses an embedder other than the one the
index was built with.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ._args import check_positive_int
from ._jsonfile import read_json
from .bm25 import BM25Index
from .embed import Embedder
from .fusion import FusedHits
from .gate import CandidateFeatures, Chunk, Evidence, Gate, Refusal, RelevanceModel
from .gate import relevance_model_for as _relevance_model_for
from .rerank import CrossEncoder, logits_to_probabilities
from .retrieve import DenseIndex, Fusion, HybridRetriever, HybridTimings
from .traces import TraceStore

__all__ = ["Pipeline", "PIPELINE_FORMAT"]

PIPELINE_FORMAT = 1
_MANIFEST = "manifest.json"
_DOCS = "docs.jsonl"
_BM25 = "bm25.idx"

Document = str | Mapping[str, Any]


def _documents(documents: Iterable[Document]) -> tuple[list[str], list[str], list[str]]:
    """(ids, titles, texts) of the documents, validated."""
    if isinstance(documents, (str, bytes, Mapping)):
        raise TypeError("documents must be an iterable of str or of {'id', 'title', 'text'} dicts")
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for i, doc in enumerate(documents):
        if isinstance(doc, str):
            doc_id, title, text = str(i), "", doc
        elif isinstance(doc, Mapping):
            doc_id = doc.get("id", doc.get("_id"))
            title, text = doc.get("title") or "", doc.get("text")
            if doc_id is None:
                raise ValueError(f"documents[{i}] has no 'id'; give every dict document one")
            if isinstance(doc_id, int) and not isinstance(doc_id, bool):
                doc_id = str(doc_id)
            if not isinstance(doc_id, str):
                raise TypeError(f"documents[{i}]['id'] must be str, got {type(doc_id).__name__}")
            if not isinstance(text, str):
                raise TypeError(f"documents[{i}]['text'] must be str, got {type(text).__name__}")
            if not isinstance(title, str):
                raise TypeError(f"documents[{i}]['title'] must be str, got {type(title).__name__}")
        else:
            raise TypeError(f"documents[{i}] must be str or a dict, got {type(doc).__name__}")
        if doc_id in seen:
            raise ValueError(f"duplicate document id {doc_id!r} (documents {seen[doc_id]} and {i})")
        seen[doc_id] = i
        ids.append(doc_id)
        titles.append(title)
        texts.append(text)
    if not ids:
        raise ValueError("documents is empty: cannot build a pipeline over an empty corpus")
    return ids, titles, texts


def _passages(titles: list[str], texts: list[str]) -> list[str]:
    """What is indexed and reranked: the title and the text together."""
    return [f"{t} {x}" if t else x for t, x in zip(titles, texts, strict=True)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Pipeline:
    """Hybrid retrieval, cross-encoder rerank and gate over one corpus.

    Build with :meth:`from_corpus` or open with :meth:`load`. One pipeline may
    serve any number of threads at once: it holds no per-query state, the
    models and the BM25 index are safe to share, and the dense index guards
    its search breadth with a lock (see :class:`~secondopinion.retrieve.DenseIndex`).
    """

    def __init__(
        self,
        ids: list[str],
        titles: list[str],
        texts: list[str],
        retriever: HybridRetriever,
        cross_encoder: CrossEncoder,
        *,
        relevance: RelevanceModel | None = None,
        traces: TraceStore | None = None,
    ) -> None:
        """Internal: use :meth:`from_corpus` or :meth:`load`."""
        self.traces = traces
        self.ids = ids
        self.titles = titles
        self.texts = texts
        self._passages = _passages(titles, texts)
        self.retriever = retriever
        self.cross_encoder = cross_encoder
        self.relevance: RelevanceModel = (
            _relevance_model_for(cross_encoder) if relevance is None else relevance
        )

    # ------------------------------------------------------------ building

    @classmethod
    def from_corpus(
        cls,
        documents: Iterable[Document],
        *,
        embedder: Embedder | None = None,
        cross_encoder: CrossEncoder | None = None,
        relevance: RelevanceModel | None = None,
        fusion: Fusion = "rrf",
        n_bm25: int | None = None,
        n_dense: int | None = None,
        m: int = 16,
        ef_construction: int = 200,
        ef: int = 128,
        show_progress: bool | None = None,
    ) -> Pipeline:
        """Index ``documents`` for BM25 and dense search.

        Args:
            documents: strings (ids become "0", "1", ...) or mappings with
                ``"id"`` (or ``"_id"``), ``"text"`` and optionally ``"title"``.
            embedder, cross_encoder: the models; ``None`` loads the package's.
            relevance: the relevance model; ``None``: what the cross-encoder's
                ``secondopinion.json`` asks for (see :func:`~.gate.relevance_model_for`).
            fusion, n_bm25, n_dense: see :class:`~secondopinion.retrieve.HybridRetriever`.
            m, ef_construction, ef: see :class:`~secondopinion.retrieve.DenseIndex`.
            show_progress: progress bars on stderr (default: for large corpora
                on a terminal).

        Raises:
            ValueError: empty corpus, duplicate ids, bad parameters.
            TypeError: a document of the wrong type.
            FileNotFoundError: a default model is not installed.
        """
        ids, titles, texts = _documents(documents)
        if embedder is None:
            embedder = Embedder()
        if cross_encoder is None:
            cross_encoder = CrossEncoder()
        passages = _passages(titles, texts)
        bm25 = BM25Index.build(passages, ids=ids, show_progress=show_progress)
        dense = DenseIndex.build(
            passages,
            ids,
            embedder=embedder,
            m=m,
            ef_construction=ef_construction,
            ef=ef,
            show_progress=show_progress,
        )
        retriever = HybridRetriever(bm25, dense, n_bm25=n_bm25, n_dense=n_dense, fusion=fusion)
        return cls(ids, titles, texts, retriever, cross_encoder, relevance=relevance)

    # ------------------------------------------------------------ searching

    def search(
        self,
        query: str,
        *,
        candidates: int = 100,
        top_n: int | None = 10,
        floor: float | None = None,
        query_id: str | None = None,
    ) -> Evidence | Refusal:
        """Retrieve, rerank and gate.

        Args:
            query: the question (non-empty).
            candidates: how many fused stage-1 candidates the cross-encoder judges.
            top_n: the most chunks returned (see :class:`~secondopinion.gate.Gate`).
            floor: the relevance floor in [0, 1]; ``None``: the cross-encoder's
                calibrated floor, else :data:`~secondopinion.gate.DEFAULT_FLOOR`.
            query_id: stored with the trace (see :attr:`traces`) so that labels
                can be joined later; ignored when tracing is off.

        Raises:
            ValueError/TypeError: empty or non-str query, candidates < 1,
                top_n < 0, floor outside [0, 1].
        """
        gate = Gate(floor, top_n)  # validates before any work
        candidates = check_positive_int(candidates, "candidates")
        start = time.perf_counter()
        hybrid = HybridTimings()
        fused = self.retriever.retrieve(query, candidates, timings=hybrid)
        timings = {
            "bm25": hybrid.bm25,
            "embed": hybrid.embed,
            "hnsw": hybrid.hnsw,
            "fuse": hybrid.fuse,
        }
        result = self._rerank_and_gate(query, fused, gate, timings)
        timings["total"] = (time.perf_counter() - start) * 1e3
        if self.traces is not None:
            # Opt-in: one SQLite transaction per query (~0.4 ms for 100 candidates).
            self.traces.record(result, query_id=query_id, model_id=self.model_id)
        return result

    @property
    def model_id(self) -> str:
        """The cross-encoder's name: traces and floors are per model."""
        return self.cross_encoder.config.name or str(self.cross_encoder.model_dir)

    def search_batch(
        self,
        queries: Sequence[str],
        *,
        candidates: int = 100,
        top_n: int | None = 10,
        floor: float | None = None,
        threads: int = 1,
        query_ids: Sequence[str] | None = None,
    ) -> list[Evidence | Refusal]:
        """``[search(q, ...) for q in queries]``, on ``threads`` threads (the
        stages release the GIL, so threads overlap one query's BM25 with
        another's inference)."""
        if isinstance(queries, (str, bytes)):
            raise TypeError("queries must be a sequence of str, not a single str")
        queries = list(queries)
        Gate(floor, top_n)
        check_positive_int(candidates, "candidates")
        threads = check_positive_int(threads, "threads")

        ids: list[str | None] = [None] * len(queries) if query_ids is None else list(query_ids)
        if len(ids) != len(queries):
            raise ValueError(f"query_ids has {len(ids)} entries for {len(queries)} queries")

        def one(q: str, qid: str | None) -> Evidence | Refusal:
            return self.search(q, candidates=candidates, top_n=top_n, floor=floor, query_id=qid)

        if threads == 1 or len(queries) < 2:
            return [one(q, qid) for q, qid in zip(queries, ids, strict=True)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(one, queries, ids))

    def _rerank_and_gate(
        self, query: str, fused: FusedHits, gate: Gate, timings: dict[str, float]
    ) -> Evidence | Refusal:
        ce = self.cross_encoder
        positions = fused.indices.tolist()
        t0 = time.perf_counter()
        batch = ce.tokenize([(query, self._passages[p]) for p in positions])
        t1 = time.perf_counter()
        # Tokenised and run apart (not CrossEncoder.predict) to time each step.
        logits = ce.logits_of(batch)
        t2 = time.perf_counter()

        n = len(positions)
        features = CandidateFeatures(
            ce_logit=logits,
            bm25_rank=fused.stage_ranks[0],
            bm25_score=fused.stage_scores[0],
            dense_rank=fused.stage_ranks[1],
            dense_score=fused.stage_scores[1],
            fused_rank=np.arange(1, n + 1, dtype=np.int32),
            fused_score=fused.scores,
        )
        probabilities = np.asarray(self.relevance.score(features), dtype=np.float64)
        if probabilities.shape != (n,):
            raise ValueError(
                f"relevance model {self.relevance!r} returned shape {probabilities.shape} "
                f"for {n} candidates"
            )
        floor = gate.resolve_floor(ce.floor)
        order, kept = gate.decide(probabilities, logits, floor)
        ce_scores = logits_to_probabilities(logits).tolist()
        logit_list = logits.tolist()
        score_list = probabilities.tolist()
        truncated = batch.truncated.tolist()
        b_rank, d_rank = fused.stage_ranks[0].tolist(), fused.stage_ranks[1].tolist()
        b_score, d_score = fused.stage_scores[0].tolist(), fused.stage_scores[1].tolist()
        f_score = fused.scores.tolist()
        ordered: list[Chunk] = []
        for r, j in enumerate(order.tolist()):
            p = positions[j]
            ordered.append(
                Chunk(
                    id=self.ids[p],
                    text=self.texts[p],
                    score=score_list[j],
                    ce_logit=logit_list[j],
                    ce_score=ce_scores[j],
                    truncated=truncated[j],
                    bm25_rank=b_rank[j],
                    bm25_score=b_score[j] if b_rank[j] else None,
                    dense_rank=d_rank[j],
                    dense_score=d_score[j] if d_rank[j] else None,
                    fused_rank=j + 1,
                    fused_score=f_score[j],
                    kept=r < kept,
                    title=self.titles[p],
                )
            )
        t3 = time.perf_counter()
        timings["tokenize"] = (t1 - t0) * 1e3
        timings["rerank"] = (t2 - t1) * 1e3
        timings["gate"] = (t3 - t2) * 1e3
        return gate.result(query, ordered, kept, floor, timings)

    # ------------------------------------------------------------ storage

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the pipeline's indexes and documents into the folder ``path``
        (created if needed; files of an earlier save there are replaced)."""
        import hnswlib

        from . import __version__

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.retriever.bm25.save(folder / _BM25)
        self.retriever.dense.save(folder)
        docs_tmp = folder / (_DOCS + ".tmp")
        with open(docs_tmp, "w", encoding="utf-8") as out:
            for doc_id, title, text in zip(self.ids, self.titles, self.texts, strict=True):
                out.write(json.dumps({"id": doc_id, "title": title, "text": text}) + "\n")
        os.replace(docs_tmp, folder / _DOCS)
        r = self.retriever
        manifest = {
            "format": PIPELINE_FORMAT,
            "versions": {
                "secondopinion": __version__,
                "hnswlib": getattr(hnswlib, "__version__", "unknown"),
            },
            "documents": len(self.ids),
            "embedder": r.dense.embedder.config.name,
            "cross_encoder": self.cross_encoder.config.name,
            "retriever": {
                "fusion": r.fusion,
                "n_bm25": r.n_bm25,
                "n_dense": r.n_dense,
                "rrf_k": r.rrf_k,
                "weights": list(r.weights),
            },
            "sha256": {_DOCS: _sha256(folder / _DOCS)},
        }
        tmp = folder / (_MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(tmp, folder / _MANIFEST)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Embedder | None = None,
        cross_encoder: CrossEncoder | None = None,
        relevance: RelevanceModel | None = None,
    ) -> Pipeline:
        """Open a pipeline written by :meth:`save`.

        Args:
            path: the folder.
            embedder: the model the index was built with (``None``: the
                package's default; a different model is refused).
            cross_encoder: the reranker (``None``: the package's default).
            relevance: as in :meth:`from_corpus`.

        Raises:
            FileNotFoundError: no folder, or a file missing from it.
            ValueError: a file is corrupt or from another format version, the
                files disagree with each other, or the embedder differs from
                the one the index was built with.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no saved pipeline at {str(folder)!r} (not a folder)")
        manifest_path = folder / _MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: missing; not a saved pipeline folder")
        manifest = read_json(manifest_path, problem="corrupt, not valid JSON")
        if not isinstance(manifest, dict) or manifest.get("format") != PIPELINE_FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise ValueError(
                f"{manifest_path}: pipeline format {found!r}, this version reads {PIPELINE_FORMAT}"
            )
        try:
            n_docs = int(manifest["documents"])
            docs_sum = str(manifest["sha256"][_DOCS])
            params = dict(manifest["retriever"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{manifest_path}: missing or malformed field ({exc})") from None
        docs_path = folder / _DOCS
        if not docs_path.is_file():
            raise FileNotFoundError(f"{docs_path}: missing from the saved pipeline")
        if _sha256(docs_path) != docs_sum:
            raise ValueError(f"{docs_path}: checksum mismatch; the file is corrupt or was edited")
        ids, titles, texts = _read_docs(docs_path)
        if len(ids) != n_docs:
            raise ValueError(f"{docs_path}: {len(ids)} documents, manifest says {n_docs}")
        if not (folder / _BM25).is_file():
            raise FileNotFoundError(f"{folder / _BM25}: missing from the saved pipeline")
        bm25 = BM25Index.load(folder / _BM25)
        dense = DenseIndex.load(folder, embedder=embedder)
        if list(bm25.ids) != ids or list(dense.ids) != ids:
            raise ValueError(f"{folder}: the indexes and {_DOCS} hold different documents")
        try:
            retriever = HybridRetriever(
                bm25,
                dense,
                n_bm25=params.get("n_bm25"),
                n_dense=params.get("n_dense"),
                fusion=params.get("fusion", "rrf"),
                rrf_k=params.get("rrf_k", 60.0),
                weights=tuple(params.get("weights", (1.0, 1.0))),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{manifest_path}: bad retriever parameters ({exc})") from None
        if cross_encoder is None:
            cross_encoder = CrossEncoder()
        return cls(ids, titles, texts, retriever, cross_encoder, relevance=relevance)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"Pipeline(docs={len(self)}, {self.retriever!r}, "
            f"cross_encoder={self.cross_encoder.config.name!r}, relevance={self.relevance!r})"
        )


def _read_docs(path: Path) -> tuple[list[str], list[str], list[str]]:
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            try:
                record = json.loads(line)
                ids.append(str(record["id"]))
                titles.append(str(record["title"]))
                texts.append(str(record["text"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: corrupt document record ({exc})") from None
    return ids, titles, texts
