"""LlamaIndex: a retriever over a :class:`~secondopinion.Pipeline`, and a node
postprocessor that reranks and gates any other retriever's nodes.

>>> from secondopinion.integrations.llamaindex import SecondOpinionRetriever  # doctest: +SKIP
>>> retriever = SecondOpinionRetriever(pipe, top_n=5)                         # doctest: +SKIP
>>> nodes = retriever.retrieve("how much ibuprofen for a 6 year old")         # doctest: +SKIP

Each kept chunk becomes a ``NodeWithScore`` whose ``score`` is the gate's
relevance probability and whose ``TextNode`` has the corpus id as ``id_``,
``metadata["title"]`` and ``metadata["secondopinion"]`` (status, rank,
score, floor, cross-encoder logit and probability, each stage's rank and
score; see :func:`~._common.chunk_metadata`). The ``secondopinion`` entry is
in ``excluded_llm_metadata_keys`` and ``excluded_embed_metadata_keys``: it
never reaches a prompt or an embedding.

A refusal is never an empty list: it is a list of ONE refusal marker, a
node (score ``None``) whose text says that no evidence was found and why,
and whose ``metadata["secondopinion"]`` holds ``"status": "refusal"``, the
reason, the best score and the floor. :func:`is_refusal` tells a query
engine to answer "I don't have evidence for that" instead of synthesising;
a synthesiser that ignores it still shows the LLM the words "No evidence was
found", not weak chunks.

Installed with ``pip install 'secondopinion[llamaindex]'`` (``llama-index-core``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
    from pydantic import ConfigDict, Field
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "secondopinion.integrations.llamaindex needs llama-index-core; install it with "
        "pip install 'secondopinion[llamaindex]'"
    ) from exc

from ..gate import Evidence, Refusal
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
    "SecondOpinionPostprocessor",
    "SecondOpinionRetriever",
    "is_refusal",
    "refusal_of",
]


def _hidden(keys: list[str]) -> list[str]:
    """``keys`` plus the secondopinion entry: provenance is for code, not for prompts."""
    return keys if METADATA_KEY in keys else [*keys, METADATA_KEY]


def _refusal_node(refusal: Refusal) -> NodeWithScore:
    node = TextNode(
        text=refusal_text(refusal),
        metadata={METADATA_KEY: refusal_metadata(refusal)},
        excluded_llm_metadata_keys=[METADATA_KEY],
        excluded_embed_metadata_keys=[METADATA_KEY],
    )
    return NodeWithScore(node=node, score=None)


def _check_nodes(nodes: object, name: str) -> list[NodeWithScore]:
    if isinstance(nodes, (str, bytes, NodeWithScore)) or not isinstance(nodes, Sequence):
        raise TypeError(f"{name} must be a list of NodeWithScore, got {type(nodes).__name__}")
    checked = list(nodes)
    for i, node in enumerate(checked):
        if not isinstance(node, NodeWithScore):
            raise TypeError(f"{name}[{i}] must be a NodeWithScore, got {type(node).__name__}")
    return checked


def is_refusal(nodes: Sequence[NodeWithScore]) -> bool:
    """Whether ``nodes`` (a retriever's or postprocessor's output, or a
    ``Response``'s ``source_nodes``) carries a secondopinion refusal marker."""
    return refusal_of(nodes) is not None


def refusal_of(nodes: Sequence[NodeWithScore]) -> dict[str, Any] | None:
    """The refusal marker's ``metadata["secondopinion"]`` (status, reason,
    best_score, floor, query, candidates), or ``None`` when ``nodes`` is evidence."""
    for node in _check_nodes(nodes, "nodes"):
        if metadata_is_refusal(node.node.metadata):
            return dict(node.node.metadata[METADATA_KEY])
    return None


class SecondOpinionRetriever(BaseRetriever):
    """A LlamaIndex retriever over a :class:`~secondopinion.Pipeline`:
    hybrid retrieval, cross-encoder rerank and gate.

    Args:
        pipeline: the pipeline (``Pipeline.from_corpus`` or ``Pipeline.load``).
        candidates: fused stage-1 candidates the cross-encoder judges.
        top_n: the most nodes returned (>= 1; ``None``: all that clear the floor).
        floor: the relevance floor in [0, 1]; ``None``: the model's calibrated one.
        callback_manager, verbose: as for any LlamaIndex retriever.

    Returns (``retrieve``): the kept chunks, best first; on a refusal, a list
    of one refusal marker (see :func:`is_refusal`).

    Raises:
        TypeError, ValueError: a bad argument, named, when built; a bad query
            (empty) when retrieving.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        candidates: int = 100,
        top_n: int | None = 10,
        floor: float | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self._search = PipelineSearch(pipeline, candidates=candidates, top_n=top_n, floor=floor)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def pipeline(self) -> Pipeline:
        return self._search.pipeline

    @property
    def candidates(self) -> int:
        return self._search.candidates

    @property
    def top_n(self) -> int | None:
        return self._search.top_n

    @property
    def floor(self) -> float | None:
        return self._search.floor

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # The search releases the GIL: on a thread it leaves the event loop free.
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self._search.search(query_bundle.query_str)
        if not isinstance(result, Evidence):
            return [_refusal_node(result)]
        nodes: list[NodeWithScore] = []
        for rank, chunk in enumerate(result.chunks, start=1):
            node = TextNode(
                id_=chunk.id,
                text=chunk.text,
                metadata={
                    "title": chunk.title,
                    METADATA_KEY: chunk_metadata(chunk, rank, result.floor),
                },
                excluded_llm_metadata_keys=[METADATA_KEY],
                excluded_embed_metadata_keys=[METADATA_KEY],
            )
            nodes.append(NodeWithScore(node=node, score=chunk.score))
        return nodes


class SecondOpinionPostprocessor(BaseNodePostprocessor):
    """Rerank and gate another retriever's nodes: ``node_postprocessors=[...]``
    of a query engine, or ``postprocess_nodes(nodes, query_str=...)``.

    Each node is judged on ``node.get_content(metadata_mode=MetadataMode.EMBED)``
    (its text with the metadata its embedding sees, as LlamaIndex's own
    rerankers do). The gate compares the cross-encoder's own probability with
    the floor (the first stage's signals that the pipeline's learned score
    needs are not available here; see
    :class:`~secondopinion.integrations._common.PassageJudge` for which floor
    applies).

    Args:
        cross_encoder: the reranker; ``None`` loads the package's.
        top_n: the most nodes returned (>= 1; ``None``: all that clear the floor).
        floor: the relevance floor in [0, 1] (``None``: see above).

    Returns (``postprocess_nodes``): the kept nodes, best first, as copies
    whose ``score`` is the relevance probability and whose metadata gains
    ``secondopinion`` (``input_rank``: the position the retriever gave it);
    on a refusal (nothing clears the floor, or no nodes), one refusal marker.
    Refusal markers in the input are not judged; when the input holds nothing
    else (the retriever refused) it is returned as it is.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cross_encoder: CrossEncoder = Field(exclude=True)
    top_n: int | None = 10
    floor: float | None = None

    def __init__(
        self,
        cross_encoder: CrossEncoder | None = None,
        *,
        top_n: int | None = 10,
        floor: float | None = None,
        **kwargs: Any,  # noqa: ANN401 - BaseNodePostprocessor's own fields (callback_manager)
    ) -> None:
        judge = PassageJudge(cross_encoder, top_n=top_n, floor=floor)
        super().__init__(
            cross_encoder=judge.cross_encoder, top_n=judge.gate.top_n, floor=floor, **kwargs
        )

    @classmethod
    def class_name(cls) -> str:
        return "SecondOpinionPostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError(
                "query_bundle is None: SecondOpinionPostprocessor judges nodes against the "
                "query; pass query_str= or query_bundle= to postprocess_nodes"
            )
        given = _check_nodes(nodes, "nodes")
        # Positions of the nodes to judge: a refusal marker is no passage.
        positions = [i for i, n in enumerate(given) if not metadata_is_refusal(n.node.metadata)]
        if given and not positions:
            return given  # the retriever refused: pass its refusal on, with its reason
        judge = PassageJudge(self.cross_encoder, top_n=self.top_n, floor=self.floor)
        result = judge.judge(
            query_bundle.query_str,
            [given[i].node.get_content(metadata_mode=MetadataMode.EMBED) for i in positions],
            [given[i].node.node_id for i in positions],
        )
        if not isinstance(result, Evidence):
            return [_refusal_node(result)]
        kept: list[NodeWithScore] = []
        for rank, chunk in enumerate(result.chunks, start=1):
            position = positions[chunk.fused_rank - 1]
            original = given[position].node
            meta = chunk_metadata(chunk, rank, result.floor, input_rank=position + 1)
            node = original.model_copy(
                update={
                    "metadata": {**original.metadata, METADATA_KEY: meta},
                    "excluded_llm_metadata_keys": _hidden(original.excluded_llm_metadata_keys),
                    "excluded_embed_metadata_keys": _hidden(original.excluded_embed_metadata_keys),
                }
            )
            kept.append(NodeWithScore(node=node, score=chunk.score))
        return kept
