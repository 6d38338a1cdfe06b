"""LangChain: a retriever over a :class:`~secondopinion.Pipeline`, and a document
compressor that reranks and gates any other retriever's documents.

>>> from secondopinion.integrations.langchain import SecondOpinionRetriever  # doctest: +SKIP
>>> retriever = SecondOpinionRetriever(pipeline=pipe, top_n=5)               # doctest: +SKIP
>>> docs = retriever.invoke("how much ibuprofen for a 6 year old")          # doctest: +SKIP

Each kept chunk becomes a ``Document`` whose ``id`` is the corpus id, with
``metadata["title"]``, ``metadata["relevance_score"]`` (the gate's relevance
probability, the key LangChain's rerankers use) and ``metadata["secondopinion"]``:
status, rank, score, floor, cross-encoder logit and probability, and each
stage's rank and score (see :func:`~._common.chunk_metadata`).

A refusal is never an empty list: it is a list of ONE refusal marker, a
``Document`` whose ``page_content`` says that no evidence was found and why,
and whose ``metadata["secondopinion"]`` holds ``"status": "refusal"``, the
reason, the best score and the floor. :func:`is_refusal` tells a chain which
branch to take (e.g. with ``RunnableBranch``); a chain that ignores it still
shows the LLM the words "No evidence was found", not weak chunks.

Installed with ``pip install 'secondopinion[langchain]'`` (``langchain-core``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "secondopinion.integrations.langchain needs langchain-core; install it with "
        "pip install 'secondopinion[langchain]'"
    ) from exc

from ..gate import Chunk, Evidence, Refusal
from ..pipeline import Pipeline
from ..rerank import CrossEncoder
from ._common import (
    METADATA_KEY,
    PassageJudge,
    PipelineSearch,
    chunk_metadata,
    metadata_is_refusal,
    refusal_metadata,
    refusal_text,
)

__all__ = [
    "SecondOpinionCompressor",
    "SecondOpinionRetriever",
    "is_refusal",
    "refusal_of",
]


def _refusal_document(refusal: Refusal) -> Document:
    return Document(
        page_content=refusal_text(refusal), metadata={METADATA_KEY: refusal_metadata(refusal)}
    )


def _chunk_fields(
    chunk: Chunk, rank: int, floor: float, *, input_rank: int | None = None
) -> dict[str, Any]:
    return {
        "relevance_score": chunk.score,
        METADATA_KEY: chunk_metadata(chunk, rank, floor, input_rank=input_rank),
    }


def _check_documents(documents: object, name: str) -> list[Document]:
    if isinstance(documents, (str, bytes, Document)) or not isinstance(documents, Sequence):
        raise TypeError(
            f"{name} must be a list of langchain Document, got {type(documents).__name__}"
        )
    docs = list(documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise TypeError(f"{name}[{i}] must be a langchain Document, got {type(doc).__name__}")
    return docs


def is_refusal(documents: Sequence[Document]) -> bool:
    """Whether ``documents`` (a retriever's or compressor's output) carries a
    secondopinion refusal marker instead of evidence."""
    return refusal_of(documents) is not None


def refusal_of(documents: Sequence[Document]) -> dict[str, Any] | None:
    """The refusal marker's ``metadata["secondopinion"]`` (status, reason,
    best_score, floor, query, candidates), or ``None`` when ``documents`` is evidence."""
    for doc in _check_documents(documents, "documents"):
        if metadata_is_refusal(doc.metadata):
            return dict(doc.metadata[METADATA_KEY])
    return None


class SecondOpinionRetriever(BaseRetriever):
    """A LangChain retriever over a :class:`~secondopinion.Pipeline`:
    hybrid retrieval, cross-encoder rerank and gate.

    Args:
        pipeline: the pipeline (``Pipeline.from_corpus`` or ``Pipeline.load``).
        candidates: fused stage-1 candidates the cross-encoder judges.
        top_n: the most documents returned (>= 1; ``None``: all that clear the floor).
        floor: the relevance floor in [0, 1]; ``None``: the model's calibrated one.

    Returns (``invoke``): the kept chunks as documents, best first; on a
    refusal, a list of one refusal marker (see :func:`is_refusal`).

    Raises:
        TypeError, ValueError: a bad argument, named, when built; a bad query
            (not a str, or empty) when invoked.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Pipeline
    candidates: int = 100
    top_n: int | None = 10
    floor: float | None = None

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        candidates: int = 100,
        top_n: int | None = 10,
        floor: float | None = None,
        **kwargs: Any,  # noqa: ANN401 - BaseRetriever's own fields (tags, metadata, name)
    ) -> None:
        settings = PipelineSearch(pipeline, candidates=candidates, top_n=top_n, floor=floor)
        super().__init__(
            pipeline=pipeline,
            candidates=settings.candidates,
            top_n=settings.top_n,
            floor=settings.floor,
            **kwargs,
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        # Read the fields on every call: a pydantic model's fields may be reassigned.
        settings = PipelineSearch(
            self.pipeline, candidates=self.candidates, top_n=self.top_n, floor=self.floor
        )
        result = settings.search(query)
        if not isinstance(result, Evidence):
            return [_refusal_document(result)]
        return [
            Document(
                id=chunk.id,
                page_content=chunk.text,
                metadata={
                    "title": chunk.title,
                    **_chunk_fields(chunk, rank, result.floor),
                },
            )
            for rank, chunk in enumerate(result.chunks, start=1)
        ]


class SecondOpinionCompressor(BaseDocumentCompressor):
    """Rerank and gate another retriever's documents; for
    ``ContextualCompressionRetriever(base_compressor=..., base_retriever=...)``
    or a plain ``compress_documents(documents, query)`` call.

    The gate compares the cross-encoder's own probability with the floor
    (the first stage's signals that :class:`~secondopinion.Pipeline`'s learned
    score needs are not available here; see
    :class:`~secondopinion.integrations._common.PassageJudge` for which floor
    applies).

    Args:
        cross_encoder: the reranker; ``None`` loads the package's.
        top_n: the most documents returned (>= 1; ``None``: all that clear the floor).
        floor: the relevance floor in [0, 1] (``None``: see above).

    Returns (``compress_documents``): copies of the kept documents, best first,
    their metadata extended by ``relevance_score`` and ``secondopinion``
    (``input_rank`` is the position the base retriever gave them); on a
    refusal (nothing clears the floor, or no documents), one refusal marker.
    Refusal markers in the input are not judged; when the input holds nothing
    else (the base retriever refused) it is returned as it is.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cross_encoder: CrossEncoder
    top_n: int | None = 10
    floor: float | None = None

    def __init__(
        self,
        cross_encoder: CrossEncoder | None = None,
        *,
        top_n: int | None = 10,
        floor: float | None = None,
    ) -> None:
        judge = PassageJudge(cross_encoder, top_n=top_n, floor=floor)
        super().__init__(cross_encoder=judge.cross_encoder, top_n=judge.gate.top_n, floor=floor)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query`` and keep what clears the floor."""
        docs = _check_documents(documents, "documents")
        # Positions of the documents to judge: a refusal marker is no passage.
        positions = [i for i, d in enumerate(docs) if not metadata_is_refusal(d.metadata)]
        if docs and not positions:
            return docs  # the base retriever refused: pass its refusal on, with its reason
        judge = PassageJudge(self.cross_encoder, top_n=self.top_n, floor=self.floor)
        result = judge.judge(
            query, [docs[i].page_content for i in positions], [docs[i].id for i in positions]
        )
        if not isinstance(result, Evidence):
            return [_refusal_document(result)]
        kept: list[Document] = []
        for rank, chunk in enumerate(result.chunks, start=1):
            position = positions[chunk.fused_rank - 1]
            original = docs[position]
            metadata = {
                **original.metadata,
                **_chunk_fields(chunk, rank, result.floor, input_rank=position + 1),
            }
            kept.append(original.model_copy(update={"metadata": metadata}))
        return kept
