"""secondopinion: two-stage retrieval for RAG with a C++ core.

Stage 1 (BM25 + vector search, fused) casts a wide net; stage 2 re-judges the
candidates with a cross-encoder, and a gate keeps what clears a relevance floor
or refuses when nothing does.
"""

from __future__ import annotations

from ._runtime import runtime_version
from .bm25 import Analyzer, BM25Index
from .embed import Embedder
from .fusion import FusedHits, fuse_rrf, fuse_weighted
from .gate import Chunk, Evidence, Gate, Refusal
from .pipeline import Pipeline
from .rerank import CrossEncoder
from .retrieve import DenseIndex, HybridRetriever
from .topk import simd_level, topk, topk_batch

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "FusedHits",
    "fuse_rrf",
    "fuse_weighted",
    "CrossEncoder",
    "Embedder",
    "runtime_version",
    "simd_level",
    "topk",
    "topk_batch",
    "Analyzer",
    "BM25Index",
    "Chunk",
    "DenseIndex",
    "Evidence",
    "Gate",
    "HybridRetriever",
    "Pipeline",
    "Refusal",
]
