"""Haystack (2.x and 3.x): a retriever component over a
:class:`~secondopinion.Pipeline`, and a ranker component that reranks and
gates any other retriever's documents.

Both have two output sockets, and send exactly one of them:

- ``documents``: the kept chunks, best first, when the gate finds evidence;
- ``refusal``: the :class:`~secondopinion.Refusal` (reason, best score,
  floor, every judged candidate) when nothing clears the floor.

So a refusal is never an empty document list: the components behind
``documents`` (a prompt builder, a generator) do not run, and whatever is
connected to ``refusal`` answers instead, as with Haystack's routers. A
``PromptBuilder`` / ``ChatPromptBuilder`` must require its ``documents``
variable to wait for it (``required_variables="*"``, the default since
Haystack 3.0; set it explicitly on 2.x, where no variable is required by
default and the builder would run without documents).

Each kept chunk becomes a ``Document`` with the corpus id as ``id``, the
relevance probability as ``score``, and ``meta["title"]`` and
``meta["secondopinion"]`` (status, rank, score, floor, cross-encoder logit
and probability, each stage's rank and score; see
:func:`~._common.chunk_metadata`).

The components serialise (``to_dict``, ``Pipeline.dumps``) when built from
paths (a saved pipeline's folder, a model directory) rather than objects;
the models load in ``warm_up`` (or on the first ``run``).

Installed with ``pip install 'secondopinion[haystack]'`` (``haystack-ai``).
"""

# No ``from __future__ import annotations``: Haystack reads run()'s annotations
# at class creation to make the input sockets, and needs them as types.

import dataclasses
import os
from pathlib import Path
from typing import Any

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.core.errors import SerializationError
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "secondopinion.integrations.haystack needs haystack-ai; install it with "
        "pip install 'secondopinion[haystack]'"
    ) from exc

from .._args import check_optional_positive_int
from ..gate import Evidence, Refusal
from ..pipeline import Pipeline
from ..rerank import CrossEncoder
from ._common import METADATA_KEY, PassageJudge, PipelineSearch, adapter_gate, chunk_metadata

__all__ = ["SecondOpinionRanker", "SecondOpinionRetriever"]


def _folder(value: object, name: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(value).__name__}")
    folder = os.fspath(value)
    if not isinstance(folder, str) or not Path(folder).is_dir():
        raise FileNotFoundError(f"{name}={value!r}: no such folder")
    return folder


def _run_top_k(top_k: object, default: int | None) -> int | None:
    """A run-time ``top_k`` (``None``: the component's)."""
    if top_k is None:
        return default
    return check_optional_positive_int(top_k, "top_k")


@component
class SecondOpinionRetriever:
    """Hybrid retrieval, cross-encoder rerank and gate over a
    :class:`~secondopinion.Pipeline`, as a Haystack component.

    Args:
        pipeline: the pipeline, or the folder a pipeline was saved to
            (``Pipeline.save``; loaded in ``warm_up``, with the package's
            models; the component then serialises).
        candidates: fused stage-1 candidates the cross-encoder judges.
        top_k: the most documents sent (>= 1; ``None``: all that clear the floor).
        floor: the relevance floor in [0, 1]; ``None``: the model's calibrated one.

    Raises:
        TypeError, ValueError: a bad argument, named.
        FileNotFoundError: ``pipeline`` is a path to no folder.
    """

    def __init__(
        self,
        pipeline: Pipeline | str | os.PathLike[str],
        *,
        candidates: int = 100,
        top_k: int | None = 10,
        floor: float | None = None,
    ) -> None:
        self._path: str | None = None
        self._search: PipelineSearch | None = None
        if isinstance(pipeline, Pipeline):
            self._search = PipelineSearch(
                pipeline, candidates=candidates, top_n=top_k, floor=floor, top_n_name="top_k"
            )
        elif isinstance(pipeline, (str, os.PathLike)):
            self._path = _folder(pipeline, "pipeline")
        else:
            raise TypeError(
                "pipeline must be a secondopinion.Pipeline or a saved pipeline's folder, "
                f"got {type(pipeline).__name__}"
            )
        self.candidates, self.top_k, self.floor = PipelineSearch.check_settings(
            candidates=candidates, top_n=top_k, floor=floor, top_n_name="top_k"
        )

    def warm_up(self) -> None:
        """Load the saved pipeline (once); a no-op for one given as an object."""
        if self._search is None:
            assert self._path is not None
            self._search = PipelineSearch(
                Pipeline.load(self._path),
                candidates=self.candidates,
                top_n=self.top_k,
                floor=self.floor,
            )

    def to_dict(self) -> dict[str, Any]:
        if self._path is None:
            raise SerializationError(
                "SecondOpinionRetriever serialises only when built from a saved pipeline's "
                "folder: Pipeline.save(folder), then SecondOpinionRetriever(folder)"
            )
        return default_to_dict(
            self,
            pipeline=self._path,
            candidates=self.candidates,
            top_k=self.top_k,
            floor=self.floor,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SecondOpinionRetriever":
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document], refusal=Refusal)
    def run(self, query: str, top_k: int | None = None) -> dict[str, Any]:
        """Retrieve, rerank and gate.

        Args:
            query: the question.
            top_k: overrides the component's ``top_k`` for this run.

        Returns:
            ``{"documents": [...]}`` on evidence, ``{"refusal": Refusal}`` otherwise.
        """
        self.warm_up()
        assert self._search is not None
        search = self._search
        limit = _run_top_k(top_k, search.top_n)
        if limit != search.top_n:
            search = PipelineSearch(
                search.pipeline, candidates=search.candidates, top_n=limit, floor=search.floor
            )
        result = search.search(query)
        if not isinstance(result, Evidence):
            return {"refusal": result}
        return {
            "documents": [
                Document(
                    id=chunk.id,
                    content=chunk.text,
                    meta={
                        "title": chunk.title,
                        METADATA_KEY: chunk_metadata(chunk, rank, result.floor),
                    },
                    score=chunk.score,
                )
                for rank, chunk in enumerate(result.chunks, start=1)
            ]
        }


@component
class SecondOpinionRanker:
    """Rerank and gate another retriever's documents, as a Haystack component.

    Each document is judged on its ``content``. The gate compares the
    cross-encoder's own probability with the floor (the first stage's signals
    that the pipeline's learned score needs are not available here; see
    :class:`~secondopinion.integrations._common.PassageJudge` for which floor
    applies).

    Args:
        cross_encoder: a :class:`~secondopinion.CrossEncoder`, a model
            directory (loaded in ``warm_up``; the component then serialises),
            or ``None`` for the package's model (serialises too).
        top_k: the most documents sent (>= 1; ``None``: all that clear the floor).
        floor: the relevance floor in [0, 1] (``None``: see above).

    The documents sent are copies with ``score`` set to the relevance
    probability and ``meta["secondopinion"]`` added (``input_rank``: the
    position the upstream retriever gave it).

    Raises:
        TypeError, ValueError: a bad argument, named.
        FileNotFoundError: ``cross_encoder`` is a path to no folder.
    """

    def __init__(
        self,
        cross_encoder: CrossEncoder | str | os.PathLike[str] | None = None,
        *,
        top_k: int | None = 10,
        floor: float | None = None,
    ) -> None:
        self._model_dir: str | None = None
        self._judge: PassageJudge | None = None
        gate = adapter_gate(floor, top_k, top_n_name="top_k")
        if isinstance(cross_encoder, CrossEncoder):
            self._judge = PassageJudge(cross_encoder, top_n=gate.top_n, floor=gate.floor)
        elif cross_encoder is not None:
            self._model_dir = _folder(cross_encoder, "cross_encoder")
        self._serialisable = not isinstance(cross_encoder, CrossEncoder)
        self.top_k = gate.top_n
        self.floor = gate.floor

    def warm_up(self) -> None:
        """Load the cross-encoder (once); a no-op for one given as an object."""
        if self._judge is None:
            model = CrossEncoder(self._model_dir)
            self._judge = PassageJudge(model, top_n=self.top_k, floor=self.floor)

    def to_dict(self) -> dict[str, Any]:
        if not self._serialisable:
            raise SerializationError(
                "SecondOpinionRanker serialises only when built from a model directory "
                "or None (the package's model), not from a CrossEncoder object"
            )
        return default_to_dict(
            self, cross_encoder=self._model_dir, top_k=self.top_k, floor=self.floor
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SecondOpinionRanker":
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document], refusal=Refusal)
    def run(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, Any]:
        """Rerank ``documents`` against ``query`` and gate them.

        Args:
            query: the question.
            documents: the upstream retriever's documents (each with text ``content``).
            top_k: overrides the component's ``top_k`` for this run.

        Returns:
            ``{"documents": [...]}`` on evidence, ``{"refusal": Refusal}``
            otherwise (also for an empty ``documents``).

        Raises:
            TypeError: ``documents`` is not a list of Document.
            ValueError: a document has no text ``content``.
        """
        if not isinstance(documents, list):
            raise TypeError(f"documents must be a list of Document, got {type(documents).__name__}")
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise TypeError(f"documents[{i}] must be a Document, got {type(doc).__name__}")
            if not isinstance(doc.content, str):
                raise ValueError(f"documents[{i}] (id {doc.id!r}) has no text content to rerank")
        self.warm_up()
        assert self._judge is not None
        judge = self._judge
        limit = _run_top_k(top_k, judge.gate.top_n)
        if limit != judge.gate.top_n:
            judge = PassageJudge(judge.cross_encoder, top_n=limit, floor=self.floor)
        result = judge.judge(query, [str(d.content) for d in documents], [d.id for d in documents])
        if not isinstance(result, Evidence):
            return {"refusal": result}
        kept: list[Document] = []
        for rank, chunk in enumerate(result.chunks, start=1):
            original = documents[chunk.fused_rank - 1]
            meta = {
                **original.meta,
                METADATA_KEY: chunk_metadata(
                    chunk, rank, result.floor, input_rank=chunk.fused_rank
                ),
            }
            kept.append(dataclasses.replace(original, meta=meta, score=chunk.score))
        return {"documents": kept}
