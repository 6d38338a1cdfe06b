"""The LlamaIndex adapter against the installed llama-index-core, with the package's models.

References: ``Pipeline.search`` for the retriever, ``CrossEncoder.predict``
plus a plain reading of the gate's rule for the postprocessor. The query
engines answer with LlamaIndex's ``MockLLM``, which echoes its prompt: an
answer that contains the evidence was synthesised from it.
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_index.core")

from adapter_corpus import (  # noqa: E402
    ANSWER_ID,
    CANDIDATES,
    NO_EVIDENCE,
    OFF_TOPIC,
    ON_TOPIC,
    demo_documents,
    kept_by_reference,
)
from llama_index.core import VectorStoreIndex, get_response_synthesizer  # noqa: E402
from llama_index.core.base.response.schema import Response  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import CustomQueryEngine, RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode  # noqa: E402

from secondopinion import Evidence, Pipeline, Refusal  # noqa: E402
from secondopinion.gate import DEFAULT_FLOOR  # noqa: E402
from secondopinion.integrations.llamaindex import (  # noqa: E402
    SecondOpinionPostprocessor,
    SecondOpinionRetriever,
    is_refusal,
    refusal_of,
)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_corpus(demo_documents(), show_progress=False)


@pytest.fixture(scope="module")
def postprocessor(pipe) -> SecondOpinionPostprocessor:
    return SecondOpinionPostprocessor(pipe.cross_encoder, top_n=3)


@pytest.fixture(scope="module")
def corpus_nodes() -> list[TextNode]:
    return [
        TextNode(id_=d["id"], text=d["text"], metadata={"title": d["title"], "source": "demo"})
        for d in demo_documents()
    ]


def scored(nodes: list[TextNode]) -> list[NodeWithScore]:
    return [NodeWithScore(node=n, score=1.0 / (i + 1)) for i, n in enumerate(nodes)]


class AnswerOrRefuse(CustomQueryEngine):
    """The README's query engine: retrieve (and postprocess) with ``engine``;
    a refusal answers NO_EVIDENCE, evidence goes to the synthesiser."""

    engine: RetrieverQueryEngine

    def custom_query(self, query_str: str) -> Response:
        bundle = QueryBundle(query_str)
        nodes = self.engine.retrieve(bundle)
        if is_refusal(nodes):
            return Response(NO_EVIDENCE, source_nodes=nodes, metadata=refusal_of(nodes))
        return self.engine.synthesize(bundle, nodes)


# ---------------------------------------------------------------- retriever


def test_retriever_returns_the_pipelines_evidence_with_provenance(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=3)
    nodes = retriever.retrieve(ON_TOPIC)
    reference = pipe.search(ON_TOPIC, candidates=CANDIDATES, top_n=3)
    assert isinstance(reference, Evidence) and reference.chunks[0].id == ANSWER_ID
    assert not is_refusal(nodes) and refusal_of(nodes) is None
    assert [n.node.node_id for n in nodes] == [c.id for c in reference.chunks]
    for rank, (node, chunk) in enumerate(zip(nodes, reference.chunks, strict=True), start=1):
        assert node.score == pytest.approx(chunk.score)
        assert node.node.get_content(metadata_mode=MetadataMode.NONE) == chunk.text
        assert node.node.metadata["title"] == chunk.title
        meta = node.node.metadata["secondopinion"]
        assert meta["status"] == "evidence" and meta["doc_id"] == chunk.id
        assert meta["rank"] == rank and meta["floor"] == reference.floor
        for name in ("score", "ce_logit", "ce_score", "bm25_score", "dense_score", "fused_score"):
            assert meta[name] == pytest.approx(getattr(chunk, name)), name
        for name in ("bm25_rank", "dense_rank", "fused_rank", "truncated"):
            assert meta[name] == getattr(chunk, name), name
        # Provenance is for code: the LLM and the embedder see the title and the text only.
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            content = node.node.get_content(metadata_mode=mode)
            assert chunk.title in content and "ce_logit" not in content


def test_retriever_refusal_is_one_marker_not_an_empty_list(pipe):
    nodes = SecondOpinionRetriever(pipe, candidates=CANDIDATES).retrieve(OFF_TOPIC)
    reference = pipe.search(OFF_TOPIC, candidates=CANDIDATES)
    assert isinstance(reference, Refusal)
    assert len(nodes) == 1 and is_refusal(nodes) and nodes[0].score is None
    refusal = refusal_of(nodes)
    assert refusal["reason"] == reference.reason
    assert refusal["best_score"] == pytest.approx(reference.best_score)
    assert refusal["best_score"] < refusal["floor"]
    assert refusal["floor"] == reference.floor and refusal["candidates"] == CANDIDATES
    assert refusal["best_doc_id"] == reference.candidates[0].id
    text = nodes[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert text.startswith("No evidence") and reference.reason in text and "best_doc_id" not in text


@pytest.mark.parametrize("floor", [1.0, 0.0])
def test_the_floor_decides(pipe, floor):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=None, floor=floor)
    assert retriever.floor == floor and retriever.top_n is None
    nodes = retriever.retrieve(ON_TOPIC)
    if floor == 1.0:
        assert is_refusal(nodes)
    else:
        assert not is_refusal(nodes) and len(nodes) == CANDIDATES


def test_retriever_async(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=2)
    nodes = asyncio.run(retriever.aretrieve(ON_TOPIC))
    assert [n.node.node_id for n in nodes] == [n.node.node_id for n in retriever.retrieve(ON_TOPIC)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"candidates": 0}, ValueError, "candidates"),
        ({"top_n": 0}, ValueError, "top_n"),
        ({"top_n": "3"}, TypeError, "top_n"),
        ({"floor": 2}, ValueError, "floor"),
    ],
)
def test_retriever_bad_arguments(pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        SecondOpinionRetriever(pipe, **kwargs)


def test_retriever_bad_pipeline_and_query(pipe):
    with pytest.raises(TypeError, match="pipeline must be a secondopinion.Pipeline"):
        SecondOpinionRetriever(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query is empty"):
        SecondOpinionRetriever(pipe).retrieve("")


# ---------------------------------------------------------------- postprocessor


def test_postprocessor_reranks_and_gates_like_the_reference(postprocessor, corpus_nodes, pipe):
    given = scored(corpus_nodes[:12])
    kept = postprocessor.postprocess_nodes(given, query_str=ON_TOPIC)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in given]
    logits = pipe.cross_encoder.predict([(ON_TOPIC, t) for t in texts], "none")
    scores = pipe.cross_encoder.predict([(ON_TOPIC, t) for t in texts])
    want = kept_by_reference(scores.tolist(), logits.tolist(), DEFAULT_FLOOR, 3)
    assert want, "the reference keeps nothing: the fixture no longer tests evidence"
    assert [n.node.node_id for n in kept] == [given[i].node.node_id for i in want]
    for rank, (node, i) in enumerate(zip(kept, want, strict=True), start=1):
        assert node.score == pytest.approx(float(scores[i]))
        assert node.node.metadata["source"] == "demo"
        meta = node.node.metadata["secondopinion"]
        assert meta["rank"] == rank and meta["input_rank"] == i + 1
        assert meta["doc_id"] == given[i].node.node_id and meta["floor"] == DEFAULT_FLOOR
        assert meta["ce_logit"] == pytest.approx(float(logits[i]))
        assert "secondopinion" in node.node.excluded_llm_metadata_keys
    # The input nodes (shared with the index's docstore) are not modified.
    assert all("secondopinion" not in n.node.metadata for n in given)
    assert [n.score for n in given] == [1.0 / (i + 1) for i in range(12)]


def test_postprocessor_refuses_off_topic_and_empty_input(postprocessor, corpus_nodes):
    out = postprocessor.postprocess_nodes(scored(corpus_nodes), query_str=OFF_TOPIC)
    assert len(out) == 1 and is_refusal(out)
    assert refusal_of(out)["candidates"] == len(corpus_nodes)
    assert refusal_of(out)["best_score"] < DEFAULT_FLOOR
    empty = postprocessor.postprocess_nodes([], query_str=ON_TOPIC)
    assert is_refusal(empty) and refusal_of(empty)["reason"].startswith("no candidates")


def test_postprocessor_passes_a_refusal_on(postprocessor, pipe):
    marker = SecondOpinionRetriever(pipe, candidates=CANDIDATES).retrieve(OFF_TOPIC)
    assert postprocessor.postprocess_nodes(marker, query_str=OFF_TOPIC) == marker


def test_postprocessor_bad_arguments(postprocessor, corpus_nodes):
    with pytest.raises(TypeError, match="cross_encoder"):
        SecondOpinionPostprocessor(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_n"):
        SecondOpinionPostprocessor(postprocessor.cross_encoder, top_n=0)
    with pytest.raises(ValueError, match="query_bundle is None"):
        postprocessor.postprocess_nodes(scored(corpus_nodes[:2]))
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a NodeWithScore"):
        postprocessor.postprocess_nodes(corpus_nodes[:2], query_str=ON_TOPIC)  # type: ignore[arg-type]


# ---------------------------------------------------------------- query engines


def engine_over(retriever, postprocessors=()) -> AnswerOrRefuse:
    llm = MockLLM()
    engine = RetrieverQueryEngine(
        retriever=retriever,
        response_synthesizer=get_response_synthesizer(llm=llm),
        node_postprocessors=list(postprocessors),
    )
    return AnswerOrRefuse(engine=engine)


def check_engine(engine: AnswerOrRefuse) -> None:
    answered = engine.query(ON_TOPIC)
    assert not is_refusal(answered.source_nodes)
    assert ANSWER_ID in [n.node.node_id for n in answered.source_nodes]
    # MockLLM echoes the prompt it was given: the evidence and the question.
    for node in answered.source_nodes:
        assert node.node.get_content(metadata_mode=MetadataMode.NONE) in str(answered)
    assert ON_TOPIC in str(answered)

    refused = engine.query(OFF_TOPIC)
    assert str(refused) == NO_EVIDENCE
    assert refused.metadata["status"] == "refusal" and is_refusal(refused.source_nodes)


def test_query_engine_with_the_retriever(pipe):
    check_engine(engine_over(SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=3)))


def test_query_engine_with_the_postprocessor(postprocessor, corpus_nodes):
    index = VectorStoreIndex(corpus_nodes, embed_model=MockEmbedding(embed_dim=8))
    # Mock embeddings rank at random: fetch every node and let the postprocessor judge.
    retriever = index.as_retriever(similarity_top_k=len(corpus_nodes))
    check_engine(engine_over(retriever, [postprocessor]))
