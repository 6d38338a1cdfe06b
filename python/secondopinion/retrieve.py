"""Stage 1 retrieval: a dense index (embedder + HNSW) and the hybrid of BM25 and dense.

:class:`DenseIndex` embeds documents with an :class:`~secondopinion.embed.Embedder`
and searches them with hnswlib (cosine similarity). :class:`HybridRetriever`
runs BM25 and the dense index for a query and fuses the two rankings
(:func:`~secondopinion.fusion.fuse_rrf` by default) into the candidates the
reranker judges, keeping each stage's rank and score per candidate.

Both indexes number documents by position: position ``i`` is the same document
in the BM25 index, the HNSW graph (its label) and the caller's corpus, so
fusion can join the two rankings on ``Hits.indices``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ._args import check_positive_int
from ._jsonfile import read_json_object
from .bm25 import BM25Index
from .embed import Embedder
from .fusion import FusedHits, fuse_rrf, fuse_weighted
from .hits import Hits

__all__ = ["DenseIndex", "HybridRetriever", "HybridTimings"]

DENSE_FORMAT = 1
_GRAPH_FILE = "dense.hnsw"
_META_FILE = "dense.json"

#: Documents embedded per call while building: one progress-bar step.
_EMBED_CHUNK = 512

Fusion = Literal["rrf", "weighted"]


def _check_query(query: object) -> str:
    if not isinstance(query, str):
        raise TypeError(f"query must be str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query is empty: give a question or keywords to search for")
    return query


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ranked(indices: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> Hits:
    """Hits sorted by score descending, ties by lower index (HNSW leaves ties unordered)."""
    order = np.lexsort((indices, -scores.astype(np.float64)))
    indices = indices[order]
    return Hits(indices=indices, scores=scores[order], ids=ids[indices])


class DenseIndex:
    """Embeddings of a corpus in an HNSW graph, searched by cosine similarity.

    Build with :meth:`build`, reopen with :meth:`load`. Scores are cosine
    similarities in [-1, 1] (float32).

    Thread safety: hnswlib keeps the search breadth ``ef`` as state of the
    index, shared by every thread. Each search therefore sets ``ef`` and runs
    the query under one lock, so a search asking for its own ``ef`` never
    changes another thread's. The lock serialises only the graph walk (well
    under a millisecond per query at 100 neighbours on corpora of thousands
    of documents), not the embedding, which runs outside it; one index per
    thread would cost a copy of the graph each instead.
    """

    def __init__(
        self,
        embedder: Embedder,
        graph: object,
        ids: np.ndarray,
        *,
        m: int,
        ef_construction: int,
        ef: int,
    ) -> None:
        """Internal: use :meth:`build` or :meth:`load`."""
        ids.flags.writeable = False
        self.embedder = embedder
        self._graph = graph
        self._ids = ids
        self.m = m
        self.ef_construction = ef_construction
        self._ef = ef
        self._lock = threading.Lock()

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        embedder: Embedder | None = None,
        m: int = 16,
        ef_construction: int = 200,
        ef: int = 128,
        seed: int = 100,
        show_progress: bool | None = None,
    ) -> DenseIndex:
        """Embed ``texts`` and index them.

        Args:
            texts: the documents (title and text joined, as BM25 indexes them).
            ids: document ids, distinct; default "0", "1", ...
            embedder: the bi-encoder; ``None`` loads the package's default.
            m: HNSW links per node (more: better recall, more memory).
            ef_construction: search breadth while building.
            ef: default search breadth; a search uses ``max(ef, k)``.
            seed: hnswlib's random seed (the graph is reproducible with one
                build thread; more threads insert in a varying order).
            show_progress: a progress bar on stderr; default when stderr is a
                terminal and there are more than ``_EMBED_CHUNK`` texts.

        Raises:
            ValueError: empty corpus, duplicate ids, mismatched lengths, or a
                parameter < 1. TypeError: a text or id that is not str.
        """
        import hnswlib
        from tqdm.auto import tqdm

        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of str, not a single str")
        texts = list(texts)
        if not texts:
            raise ValueError("texts is empty: cannot build a dense index from an empty corpus")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be str, got {type(text).__name__}")
        id_array = _check_ids(ids, len(texts))
        m = check_positive_int(m, "m")
        ef_construction = check_positive_int(ef_construction, "ef_construction")
        ef = check_positive_int(ef, "ef")
        seed = int(seed)
        if embedder is None:
            embedder = Embedder()
        if show_progress is None:
            show_progress = sys.stderr.isatty() and len(texts) > _EMBED_CHUNK

        graph = hnswlib.Index(space="cosine", dim=embedder.dimension)
        graph.init_index(
            max_elements=len(texts), ef_construction=ef_construction, M=m, random_seed=seed
        )
        with tqdm(
            total=len(texts), unit="doc", desc="embed", disable=not show_progress, file=sys.stderr
        ) as bar:
            for start in range(0, len(texts), _EMBED_CHUNK):
                stop = min(len(texts), start + _EMBED_CHUNK)
                vectors = embedder.encode(texts[start:stop])
                graph.add_items(vectors, np.arange(start, stop, dtype=np.int64))
                bar.update(stop - start)
        graph.set_ef(ef)
        return cls(embedder, graph, id_array, m=m, ef_construction=ef_construction, ef=ef)

    # ------------------------------------------------------------------ search

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding, float32 [dimension]."""
        return self.embedder.encode([_check_query(query)])[0]

    def search(self, query: str, k: int = 100, *, ef: int | None = None) -> Hits:
        """The ``k`` nearest documents to ``query`` by cosine similarity (fewer if the
        corpus is smaller); ``ef`` overrides the search breadth for this query."""
        return self.search_vector(self.embed_query(query), k, ef=ef)

    def search_vector(self, vector: np.ndarray, k: int = 100, *, ef: int | None = None) -> Hits:
        """Like :meth:`search`, for a query already embedded."""
        k = check_positive_int(k, "k")
        ef = self._ef if ef is None else check_positive_int(ef, "ef")
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.dimension,):
            raise ValueError(f"vector must have shape ({self.dimension},), got {vector.shape}")
        if not np.all(np.isfinite(vector)):
            raise ValueError("vector holds NaN or infinite values")
        k = min(k, len(self))
        with self._lock:
            self._graph.set_ef(max(ef, k))
            labels, distances = self._graph.knn_query(vector[None, :], k=k, num_threads=1)
        indices = labels[0].astype(np.int64)
        scores = (1.0 - distances[0]).astype(np.float32)
        return _ranked(indices, scores, self._ids)

    # --------------------------------------------------------------- storage

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the graph (``dense.hnsw``) and its metadata (``dense.json``:
        ids, parameters, embedder, checksum) into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        graph_path = folder / _GRAPH_FILE
        tmp = folder / (_GRAPH_FILE + ".tmp")
        with self._lock:
            self._graph.save_index(str(tmp))
        os.replace(tmp, graph_path)
        meta = {
            "format": DENSE_FORMAT,
            "space": "cosine",
            "dimension": self.dimension,
            "count": len(self),
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef": self._ef,
            "embedder": self.embedder.config.name,
            "sha256": _sha256(graph_path),
            "ids": self._ids.tolist(),
        }
        _write_json(folder / _META_FILE, meta)

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], *, embedder: Embedder | None = None
    ) -> DenseIndex:
        """Open an index written by :meth:`save`.

        The graph file's checksum is verified before hnswlib reads it (hnswlib
        trusts its input and may crash on a damaged file).

        Raises:
            FileNotFoundError: a file is missing. ValueError: a file is corrupt,
                of another format version, or ``embedder`` is not the model
                the index was built with (name or dimension differ).
        """
        import hnswlib

        folder = Path(folder)
        meta_path, graph_path = folder / _META_FILE, folder / _GRAPH_FILE
        for path in (meta_path, graph_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing; not a saved DenseIndex folder")
        meta = read_json_object(meta_path)
        if meta.get("format") != DENSE_FORMAT:
            raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {DENSE_FORMAT}")
        try:
            dimension, count = int(meta["dimension"]), int(meta["count"])
            m, ef_c, ef = int(meta["m"]), int(meta["ef_construction"]), int(meta["ef"])
            ids, checksum, model = list(meta["ids"]), str(meta["sha256"]), str(meta["embedder"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{meta_path}: missing or malformed field ({exc})") from None
        if len(ids) != count or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"{meta_path}: 'ids' must be {count} strings")
        if _sha256(graph_path) != checksum:
            raise ValueError(f"{graph_path}: checksum mismatch; the file is corrupt or replaced")
        if embedder is None:
            embedder = Embedder()
        if embedder.dimension != dimension or embedder.config.name != model:
            raise ValueError(
                f"{folder}: built with embedder {model!r} ({dimension} dims); got "
                f"{embedder.config.name!r} ({embedder.dimension} dims). Pass embedder= that model"
            )
        graph = hnswlib.Index(space="cosine", dim=dimension)
        graph.load_index(str(graph_path), max_elements=count)
        if graph.get_current_count() != count:
            found = graph.get_current_count()
            raise ValueError(f"{graph_path}: holds {found} vectors, not {count}")
        graph.set_ef(ef)
        return cls(
            embedder,
            graph,
            np.array(ids, dtype=object),
            m=m,
            ef_construction=ef_c,
            ef=ef,
        )

    # ------------------------------------------------------------ properties

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def dimension(self) -> int:
        return int(self.embedder.dimension)

    @property
    def ef(self) -> int:
        """The default search breadth (a search uses ``max(ef, k)``)."""
        return self._ef

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __repr__(self) -> str:
        return (
            f"DenseIndex(docs={len(self)}, dimension={self.dimension}, M={self.m}, "
            f"ef_construction={self.ef_construction}, ef={self._ef})"
        )


def _check_ids(ids: Sequence[str] | None, n: int) -> np.ndarray:
    if ids is None:
        return np.array([str(i) for i in range(n)], dtype=object)
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a sequence of str, not a single str")
    id_list = list(ids)
    if len(id_list) != n:
        raise ValueError(f"ids has {len(id_list)} entries for {n} texts")
    seen: dict[str, int] = {}
    for i, v in enumerate(id_list):
        if not isinstance(v, str):
            raise TypeError(f"ids[{i}] must be str, got {type(v).__name__}")
        if v in seen:
            raise ValueError(f"duplicate document id {v!r} (documents {seen[v]} and {i})")
        seen[v] = i
    return np.array(id_list, dtype=object)


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------- hybrid


@dataclass
class HybridTimings:
    """Milliseconds spent in each part of one hybrid search."""

    bm25: float = 0.0  # analysis and BM25 scoring
    embed: float = 0.0
    hnsw: float = 0.0
    fuse: float = 0.0


class HybridRetriever:
    """BM25 and dense retrieval fused into one candidate list.

    Args:
        bm25: the BM25 index.
        dense: the dense index over the same documents, in the same positions.
        n_bm25, n_dense: how deep each leg retrieves; ``None``: the number of
            candidates asked for (so every candidate could come from either leg).
        fusion: ``"rrf"`` (reciprocal rank, k = ``rrf_k``; the default: it
            needs no score normalisation and, on SciFact, RRF of BM25 and
            all-MiniLM-L6-v2 reached 0.712 nDCG@10 against 0.683 for BM25
            alone, see issue 6) or ``"weighted"`` (min-max normalised sum).
        weights: the (BM25, dense) weights of the fusion.

    Raises:
        ValueError: the indexes hold different documents, or a bad parameter.
    """

    def __init__(
        self,
        bm25: BM25Index,
        dense: DenseIndex,
        *,
        n_bm25: int | None = None,
        n_dense: int | None = None,
        fusion: Fusion = "rrf",
        rrf_k: float = 60.0,
        weights: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        if len(bm25) != len(dense) or not np.array_equal(bm25.ids, dense.ids):
            raise ValueError(
                "bm25 and dense must index the same documents in the same order "
                f"({len(bm25)} and {len(dense)} documents)"
            )
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        self.bm25 = bm25
        self.dense = dense
        self.n_bm25 = None if n_bm25 is None else check_positive_int(n_bm25, "n_bm25")
        self.n_dense = None if n_dense is None else check_positive_int(n_dense, "n_dense")
        self.fusion = fusion
        self.rrf_k = float(rrf_k)
        self.weights = (float(weights[0]), float(weights[1]))
        # Check k and weights once, here, rather than on the first query.
        empty = Hits(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, object))
        self._fuse([empty, empty], 1)

    def retrieve(
        self, query: str, candidates: int = 100, *, timings: HybridTimings | None = None
    ) -> FusedHits:
        """The best ``candidates`` documents for ``query``, fused.

        ``stage_ranks[0]``/``stage_scores[0]`` of the result are BM25's,
        ``[1]`` the dense index's (rank 0 / NaN where a leg did not return the
        document). Pass ``timings`` to have each part's time recorded in it.
        """
        query = _check_query(query)
        candidates = check_positive_int(candidates, "candidates")
        t = timings if timings is not None else HybridTimings()
        start = time.perf_counter()
        lexical = self.bm25.search(query, k=min(self.n_bm25 or candidates, len(self.bm25)))
        after_bm25 = time.perf_counter()
        vector = self.dense.embed_query(query)
        after_embed = time.perf_counter()
        semantic = self.dense.search_vector(vector, k=self.n_dense or candidates)
        after_hnsw = time.perf_counter()
        fused = self._fuse([lexical, semantic], candidates)
        end = time.perf_counter()
        t.bm25 = (after_bm25 - start) * 1e3
        t.embed = (after_embed - after_bm25) * 1e3
        t.hnsw = (after_hnsw - after_embed) * 1e3
        t.fuse = (end - after_hnsw) * 1e3
        return fused

    def _fuse(self, legs: list[Hits], limit: int) -> FusedHits:
        weights = list(self.weights)
        if self.fusion == "rrf":
            return fuse_rrf(legs, k=self.rrf_k, weights=weights, limit=limit)
        return fuse_weighted(legs, weights=weights, norm="minmax", limit=limit)

    def __repr__(self) -> str:
        return (
            f"HybridRetriever(docs={len(self.bm25)}, n_bm25={self.n_bm25}, "
            f"n_dense={self.n_dense}, fusion={self.fusion!r})"
        )
