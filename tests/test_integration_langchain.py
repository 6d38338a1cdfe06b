"""The LangChain adapter against the installed langchain-core, with the package's models.

References: ``Pipeline.search`` for the retriever, ``CrossEncoder.predict``
plus a plain reading of the gate's rule for the compressor. The chains run
LangChain's own fake LLMs; a callback records every prompt they receive.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from adapter_corpus import (  # noqa: E402
    ANSWER_ID,
    CANDIDATES,
    NO_EVIDENCE,
    OFF_TOPIC,
    ON_TOPIC,
    demo_documents,
    kept_by_reference,
)
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_core.language_models.fake import FakeListLLM  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate  # noqa: E402
from langchain_core.runnables import (  # noqa: E402
    Runnable,
    RunnableBranch,
    RunnableLambda,
    RunnablePassthrough,
)
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from secondopinion import CrossEncoder, Evidence, Pipeline, Refusal  # noqa: E402
from secondopinion.gate import DEFAULT_FLOOR  # noqa: E402
from secondopinion.integrations.langchain import (  # noqa: E402
    SecondOpinionCompressor,
    SecondOpinionRetriever,
    is_refusal,
    refusal_of,
)

ANSWER = "A 6 to 8 year old (48 to 59 lb) gets 10 mL, which is 200 mg."


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_corpus(demo_documents(), show_progress=False)


@pytest.fixture(scope="module")
def compressor(pipe) -> SecondOpinionCompressor:
    return SecondOpinionCompressor(pipe.cross_encoder, top_n=3)


@pytest.fixture(scope="module")
def corpus_documents() -> list[Document]:
    """The demo corpus as LangChain documents, with metadata of the caller's own."""
    return [
        Document(
            id=d["id"], page_content=d["text"], metadata={"title": d["title"], "source": "demo"}
        )
        for d in demo_documents()
    ]


class PromptRecorder(BaseCallbackHandler):
    """Every prompt an LLM or chat model of the chain receives."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
        self.prompts.extend(prompts)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.prompts.extend("\n".join(str(m.content) for m in batch) for batch in messages)


# ---------------------------------------------------------------- retriever


def test_retriever_returns_the_pipelines_evidence_with_provenance(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=3)
    docs = retriever.invoke(ON_TOPIC)
    reference = pipe.search(ON_TOPIC, candidates=CANDIDATES, top_n=3)
    assert isinstance(reference, Evidence) and reference.chunks[0].id == ANSWER_ID
    assert not is_refusal(docs) and refusal_of(docs) is None
    assert [d.id for d in docs] == [c.id for c in reference.chunks]
    for rank, (doc, chunk) in enumerate(zip(docs, reference.chunks, strict=True), start=1):
        assert doc.page_content == chunk.text
        assert doc.metadata["title"] == chunk.title
        assert doc.metadata["relevance_score"] == pytest.approx(chunk.score)
        meta = doc.metadata["secondopinion"]
        assert meta["status"] == "evidence" and meta["doc_id"] == chunk.id
        assert meta["rank"] == rank and meta["floor"] == reference.floor
        assert meta["score"] >= reference.floor
        for name in ("score", "ce_logit", "ce_score", "bm25_score", "dense_score", "fused_score"):
            assert meta[name] == pytest.approx(getattr(chunk, name)), name
        for name in ("bm25_rank", "dense_rank", "fused_rank", "truncated"):
            assert meta[name] == getattr(chunk, name), name


def test_retriever_refusal_is_one_marker_not_an_empty_list(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES)
    docs = retriever.invoke(OFF_TOPIC)
    reference = pipe.search(OFF_TOPIC, candidates=CANDIDATES)
    assert isinstance(reference, Refusal)
    assert len(docs) == 1 and is_refusal(docs)
    refusal = refusal_of(docs)
    assert refusal == {
        "status": "refusal",
        "reason": reference.reason,
        "best_score": pytest.approx(reference.best_score),
        "best_doc_id": reference.candidates[0].id,
        "floor": reference.floor,
        "query": OFF_TOPIC,
        "candidates": CANDIDATES,
    }
    assert refusal["best_score"] < refusal["floor"]
    assert reference.reason in docs[0].page_content
    assert docs[0].page_content.startswith("No evidence")


@pytest.mark.parametrize("floor", [1.0, 0.0])
def test_the_floor_decides(pipe, floor):
    """floor 1 refuses anything (probabilities stay below 1); floor 0 keeps everything."""
    docs = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=None, floor=floor).invoke(
        ON_TOPIC
    )
    if floor == 1.0:
        assert is_refusal(docs) and refusal_of(docs)["floor"] == 1.0
    else:
        assert not is_refusal(docs) and len(docs) == CANDIDATES


def test_retriever_reads_reassigned_fields(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=3)
    retriever.top_n = 1
    assert len(retriever.invoke(ON_TOPIC)) == 1
    retriever.floor = 1.5
    with pytest.raises(ValueError, match="floor"):
        retriever.invoke(ON_TOPIC)


def test_retriever_async(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=2)
    docs = asyncio.run(retriever.ainvoke(ON_TOPIC))
    assert [d.id for d in docs] == [d.id for d in retriever.invoke(ON_TOPIC)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"candidates": 0}, ValueError, "candidates"),
        ({"candidates": "5"}, TypeError, "candidates"),
        ({"top_n": 0}, ValueError, "top_n"),
        ({"top_n": -1}, ValueError, "top_n"),
        ({"top_n": 2.5}, TypeError, "top_n"),
        ({"floor": 1.5}, ValueError, "floor"),
        ({"floor": "high"}, TypeError, "floor"),
    ],
)
def test_retriever_bad_arguments(pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        SecondOpinionRetriever(pipe, **kwargs)


def test_retriever_bad_pipeline_and_query(pipe):
    with pytest.raises(TypeError, match="pipeline must be a secondopinion.Pipeline"):
        SecondOpinionRetriever("my.index")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query is empty"):
        SecondOpinionRetriever(pipe).invoke("  ")


# ---------------------------------------------------------------- compressor


def test_compressor_reranks_and_gates_like_the_reference(compressor, corpus_documents, pipe):
    docs = corpus_documents[:12]
    before = [d.model_copy(deep=True) for d in docs]
    compressed = compressor.compress_documents(docs, ON_TOPIC)
    logits = pipe.cross_encoder.predict([(ON_TOPIC, d.page_content) for d in docs], "none")
    scores = pipe.cross_encoder.predict([(ON_TOPIC, d.page_content) for d in docs])
    want = kept_by_reference(scores.tolist(), logits.tolist(), DEFAULT_FLOOR, 3)
    assert want, "the reference keeps nothing: the fixture no longer tests evidence"
    assert [d.id for d in compressed] == [docs[i].id for i in want]
    for rank, (doc, i) in enumerate(zip(compressed, want, strict=True), start=1):
        assert doc.page_content == docs[i].page_content
        assert (
            doc.metadata["source"] == "demo" and doc.metadata["title"] == docs[i].metadata["title"]
        )
        assert doc.metadata["relevance_score"] == pytest.approx(float(scores[i]))
        meta = doc.metadata["secondopinion"]
        assert meta["rank"] == rank and meta["input_rank"] == i + 1 and meta["doc_id"] == docs[i].id
        assert meta["ce_logit"] == pytest.approx(float(logits[i]))
        assert meta["floor"] == DEFAULT_FLOOR  # the model's floor is for another score
        assert "bm25_rank" not in meta
    assert docs == before, "the input documents were modified"


def test_compressor_refuses_off_topic_and_empty_input(compressor, corpus_documents, pipe):
    scores = pipe.cross_encoder.predict([(OFF_TOPIC, d.page_content) for d in corpus_documents])
    assert scores.max() < DEFAULT_FLOOR
    out = compressor.compress_documents(corpus_documents, OFF_TOPIC)
    assert len(out) == 1 and is_refusal(out)
    refusal = refusal_of(out)
    assert refusal["best_score"] == pytest.approx(float(scores.max()))
    assert refusal["candidates"] == len(corpus_documents)
    empty = compressor.compress_documents([], ON_TOPIC)
    assert is_refusal(empty) and refusal_of(empty)["reason"].startswith("no candidates")
    assert refusal_of(empty)["best_score"] is None


def test_compressor_passes_a_refusal_on_and_skips_markers(compressor, corpus_documents, pipe):
    marker = SecondOpinionRetriever(pipe, candidates=CANDIDATES).invoke(OFF_TOPIC)
    assert compressor.compress_documents(marker, OFF_TOPIC) == marker
    mixed = compressor.compress_documents([*marker, *corpus_documents[:12]], ON_TOPIC)
    plain = compressor.compress_documents(corpus_documents[:12], ON_TOPIC)
    assert [d.id for d in mixed] == [d.id for d in plain] and not is_refusal(mixed)
    assert [d.metadata["secondopinion"]["input_rank"] for d in mixed] == [
        d.metadata["secondopinion"]["input_rank"] + 1 for d in plain
    ]


def test_compressor_bad_arguments(compressor, corpus_documents):
    with pytest.raises(TypeError, match="cross_encoder must be a secondopinion.CrossEncoder"):
        SecondOpinionCompressor("model-dir")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_n"):
        SecondOpinionCompressor(compressor.cross_encoder, top_n=0)
    with pytest.raises(ValueError, match="floor"):
        SecondOpinionCompressor(compressor.cross_encoder, floor=-0.1)
    with pytest.raises(TypeError, match="documents must be a list"):
        compressor.compress_documents("some text", ON_TOPIC)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        compressor.compress_documents([corpus_documents[0], "text"], ON_TOPIC)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="query is empty"):
        compressor.compress_documents(corpus_documents[:2], "")
    with pytest.raises(TypeError, match="documents must be a list"):
        is_refusal(corpus_documents[0])  # type: ignore[arg-type]


def test_compressor_loads_the_default_model():
    assert isinstance(SecondOpinionCompressor().cross_encoder, CrossEncoder)


# ---------------------------------------------------------------- chains


def answer_or_refuse(retriever: Runnable, answer: Runnable) -> Runnable:
    """The README's chain: a refusal short-cuts to NO_EVIDENCE; evidence goes to the LLM."""

    def context(inputs: dict[str, Any]) -> str:
        return "\n\n".join(d.page_content for d in inputs["docs"])

    return (
        {"docs": retriever, "question": RunnablePassthrough()}
        | RunnablePassthrough.assign(context=context)
        | RunnableBranch(
            (lambda inputs: is_refusal(inputs["docs"]), RunnableLambda(lambda _: NO_EVIDENCE)),
            answer,
        )
    )


def test_chain_with_the_retriever_answers_from_evidence_or_says_no_evidence(pipe):
    llm = FakeListLLM(responses=[ANSWER])
    prompt = PromptTemplate.from_template(
        "Answer from the context only.\n\nContext:\n{context}\n\nQuestion: {question}"
    )
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_n=3)
    chain = answer_or_refuse(retriever, prompt | llm | StrOutputParser())
    evidence = retriever.invoke(ON_TOPIC)

    recorder = PromptRecorder()
    assert chain.invoke(ON_TOPIC, config={"callbacks": [recorder]}) == ANSWER
    assert len(recorder.prompts) == 1
    assert all(doc.page_content in recorder.prompts[0] for doc in evidence)
    assert ON_TOPIC in recorder.prompts[0]

    recorder = PromptRecorder()
    assert chain.invoke(OFF_TOPIC, config={"callbacks": [recorder]}) == NO_EVIDENCE
    assert recorder.prompts == [], "the LLM was asked despite the refusal"


def test_contextual_compression_retriever_with_the_compressor(compressor, corpus_documents):
    classic = pytest.importorskip("langchain_classic.retrievers")
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(corpus_documents)
    # Fake embeddings rank at random: fetch every document and let the compressor judge.
    base = store.as_retriever(search_kwargs={"k": len(corpus_documents)})
    retriever = classic.ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=base
    )
    kept = retriever.invoke(ON_TOPIC)
    assert kept and not is_refusal(kept)
    assert ANSWER_ID in [d.id for d in kept]
    assert is_refusal(retriever.invoke(OFF_TOPIC))

    llm = FakeListChatModel(responses=[ANSWER])
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context only.\n\n{context}"), ("human", "{question}")]
    )
    chain = answer_or_refuse(retriever, prompt | llm | StrOutputParser())
    recorder = PromptRecorder()
    assert chain.invoke(ON_TOPIC, config={"callbacks": [recorder]}) == ANSWER
    assert len(recorder.prompts) == 1
    assert all(doc.page_content in recorder.prompts[0] for doc in kept)
    recorder = PromptRecorder()
    assert chain.invoke(OFF_TOPIC, config={"callbacks": [recorder]}) == NO_EVIDENCE
    assert recorder.prompts == []
