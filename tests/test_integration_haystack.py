"""The Haystack adapter against the installed haystack-ai, with the package's models.

References: ``Pipeline.search`` for the retriever, ``CrossEncoder.predict``
plus a plain reading of the gate's rule for the ranker. The Haystack
pipelines route a refusal to a small ``NoEvidence`` component and evidence
through ``PromptBuilder`` to a fake generator that records its prompts.
"""

# No ``from __future__ import annotations``: Haystack reads the components'
# run() annotations as types to make their sockets.
import os
from typing import Any

import pytest

# Tests need no network: Haystack would send usage telemetry from Pipeline.run.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
pytest.importorskip("haystack")

from adapter_corpus import (  # noqa: E402
    ANSWER_ID,
    CANDIDATES,
    NO_EVIDENCE,
    OFF_TOPIC,
    ON_TOPIC,
    demo_documents,
    kept_by_reference,
)
from haystack import Document, component  # noqa: E402
from haystack import Pipeline as HaystackPipeline  # noqa: E402
from haystack.components.builders import PromptBuilder  # noqa: E402
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever  # noqa: E402
from haystack.core.errors import SerializationError  # noqa: E402
from haystack.document_stores.in_memory import InMemoryDocumentStore  # noqa: E402

from secondopinion import Evidence, Pipeline, Refusal  # noqa: E402
from secondopinion.gate import DEFAULT_FLOOR  # noqa: E402
from secondopinion.integrations.haystack import (  # noqa: E402
    SecondOpinionRanker,
    SecondOpinionRetriever,
)

ANSWER = "A 6 to 8 year old (48 to 59 lb) gets 10 mL, which is 200 mg."
TEMPLATE = """Answer from the context only.
{% for doc in documents %}{{ doc.content }}
{% endfor %}
Question: {{ query }}"""


@component
class FakeGenerator:
    """A generator that answers ANSWER and records every prompt it receives."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    @component.output_types(replies=list[str])
    def run(self, prompt: str) -> dict[str, Any]:
        self.prompts.append(prompt)
        return {"replies": [ANSWER]}


@component
class NoEvidence:
    """What answers when the gate refuses."""

    @component.output_types(replies=list[str], reason=str)
    def run(self, refusal: Refusal) -> dict[str, Any]:
        return {"replies": [NO_EVIDENCE], "reason": refusal.reason}


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_corpus(demo_documents(), show_progress=False)


@pytest.fixture(scope="module")
def corpus_documents() -> list[Document]:
    return [
        Document(id=d["id"], content=d["text"], meta={"title": d["title"]})
        for d in demo_documents()
    ]


def answer_or_refuse(first: dict[str, Any], connect: list[tuple[str, str]]) -> tuple:
    """The README's pipeline: ``documents`` feed PromptBuilder and the generator;
    ``refusal`` feeds NoEvidence. ``first`` names the retrieval components."""
    generator = FakeGenerator()
    p = HaystackPipeline()
    for name, instance in first.items():
        p.add_component(name, instance)
    p.add_component("prompt", PromptBuilder(TEMPLATE, required_variables=["documents", "query"]))
    p.add_component("llm", generator)
    p.add_component("no_evidence", NoEvidence())
    for sender, receiver in connect:
        p.connect(sender, receiver)
    p.connect("prompt.prompt", "llm.prompt")
    return p, generator


# ---------------------------------------------------------------- retriever


def test_retriever_sends_the_pipelines_evidence_with_provenance(pipe):
    out = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_k=3).run(ON_TOPIC)
    reference = pipe.search(ON_TOPIC, candidates=CANDIDATES, top_n=3)
    assert isinstance(reference, Evidence) and reference.chunks[0].id == ANSWER_ID
    assert set(out) == {"documents"}
    docs = out["documents"]
    assert [d.id for d in docs] == [c.id for c in reference.chunks]
    for rank, (doc, chunk) in enumerate(zip(docs, reference.chunks, strict=True), start=1):
        assert doc.content == chunk.text and doc.meta["title"] == chunk.title
        assert doc.score == pytest.approx(chunk.score)
        meta = doc.meta["secondopinion"]
        assert meta["status"] == "evidence" and meta["rank"] == rank
        assert meta["doc_id"] == chunk.id and meta["floor"] == reference.floor
        for name in ("score", "ce_logit", "ce_score", "bm25_score", "dense_score", "fused_score"):
            assert meta[name] == pytest.approx(getattr(chunk, name)), name
        for name in ("bm25_rank", "dense_rank", "fused_rank", "truncated"):
            assert meta[name] == getattr(chunk, name), name


def test_retriever_sends_a_refusal_and_no_documents(pipe):
    out = SecondOpinionRetriever(pipe, candidates=CANDIDATES).run(OFF_TOPIC)
    reference = pipe.search(OFF_TOPIC, candidates=CANDIDATES)
    assert isinstance(reference, Refusal)
    assert set(out) == {"refusal"}
    refusal = out["refusal"]
    assert isinstance(refusal, Refusal) and refusal.reason == reference.reason
    assert (
        refusal.best_score == pytest.approx(reference.best_score)
        and refusal.floor == reference.floor
    )
    assert len(refusal.candidates) == CANDIDATES


def test_run_time_top_k_and_the_floor(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_k=None, floor=0.0)
    assert len(retriever.run(ON_TOPIC)["documents"]) == CANDIDATES
    assert len(retriever.run(ON_TOPIC, top_k=2)["documents"]) == 2
    assert "refusal" in SecondOpinionRetriever(pipe, floor=1.0).run(ON_TOPIC)
    with pytest.raises(ValueError, match="top_k"):
        retriever.run(ON_TOPIC, top_k=0)


def test_retriever_from_a_saved_pipeline_serialises(pipe, tmp_path):
    pipe.save(tmp_path / "index")
    retriever = SecondOpinionRetriever(str(tmp_path / "index"), candidates=CANDIDATES, top_k=3)
    data = retriever.to_dict()
    assert data["init_parameters"] == {
        "pipeline": str(tmp_path / "index"),
        "candidates": CANDIDATES,
        "top_k": 3,
        "floor": None,
    }
    again = SecondOpinionRetriever.from_dict(data)
    got = again.run(ON_TOPIC)["documents"]
    assert [d.id for d in got] == [
        c.id for c in pipe.search(ON_TOPIC, candidates=CANDIDATES, top_n=3).chunks
    ]
    with pytest.raises(SerializationError, match="saved pipeline"):
        SecondOpinionRetriever(pipe).to_dict()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"candidates": 0}, ValueError, "candidates"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1"),
        ({"top_k": "5"}, TypeError, "top_k must be an int"),
        ({"floor": -1}, ValueError, "floor"),
    ],
)
def test_retriever_bad_arguments(pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        SecondOpinionRetriever(pipe, **kwargs)


def test_retriever_bad_pipeline_and_query(pipe, tmp_path):
    with pytest.raises(TypeError, match="pipeline must be"):
        SecondOpinionRetriever(3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="pipeline="):
        SecondOpinionRetriever(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="query is empty"):
        SecondOpinionRetriever(pipe).run("")


# ---------------------------------------------------------------- ranker


def test_ranker_reranks_and_gates_like_the_reference(pipe, corpus_documents):
    docs = corpus_documents[:12]
    ranker = SecondOpinionRanker(pipe.cross_encoder, top_k=3)
    out = ranker.run(ON_TOPIC, docs)
    logits = pipe.cross_encoder.predict([(ON_TOPIC, d.content) for d in docs], "none")
    scores = pipe.cross_encoder.predict([(ON_TOPIC, d.content) for d in docs])
    want = kept_by_reference(scores.tolist(), logits.tolist(), DEFAULT_FLOOR, 3)
    assert want and set(out) == {"documents"}
    assert [d.id for d in out["documents"]] == [docs[i].id for i in want]
    for rank, (doc, i) in enumerate(zip(out["documents"], want, strict=True), start=1):
        assert doc.score == pytest.approx(float(scores[i])) and doc.content == docs[i].content
        assert doc.meta["title"] == docs[i].meta["title"]
        meta = doc.meta["secondopinion"]
        assert (
            meta["rank"] == rank and meta["input_rank"] == i + 1 and meta["floor"] == DEFAULT_FLOOR
        )
    assert all(d.score is None and "secondopinion" not in d.meta for d in docs), "input modified"
    assert len(ranker.run(ON_TOPIC, docs, top_k=1)["documents"]) == 1


def test_ranker_refuses_off_topic_and_empty_input(pipe, corpus_documents):
    ranker = SecondOpinionRanker(pipe.cross_encoder)
    out = ranker.run(OFF_TOPIC, corpus_documents)
    assert set(out) == {"refusal"} and out["refusal"].best_score < DEFAULT_FLOOR
    empty = ranker.run(ON_TOPIC, [])
    assert set(empty) == {"refusal"} and empty["refusal"].reason.startswith("no candidates")


def test_ranker_serialises_with_the_package_model(pipe):
    ranker = SecondOpinionRanker(top_k=4, floor=0.3)
    data = ranker.to_dict()
    assert data["init_parameters"] == {"cross_encoder": None, "top_k": 4, "floor": 0.3}
    again = SecondOpinionRanker.from_dict(data)
    again.warm_up()
    with pytest.raises(SerializationError, match="CrossEncoder object"):
        SecondOpinionRanker(pipe.cross_encoder).to_dict()


def test_ranker_bad_arguments(pipe, corpus_documents, tmp_path):
    with pytest.raises(FileNotFoundError, match="cross_encoder="):
        SecondOpinionRanker(tmp_path / "no-model")
    with pytest.raises(TypeError, match="cross_encoder must be a path"):
        SecondOpinionRanker(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        SecondOpinionRanker(pipe.cross_encoder, top_k=0)
    ranker = SecondOpinionRanker(pipe.cross_encoder)
    with pytest.raises(TypeError, match=r"documents\[1\] must be a Document"):
        ranker.run(ON_TOPIC, [corpus_documents[0], "text"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"documents\[0\] .* has no text content"):
        ranker.run(ON_TOPIC, [Document(content=None)])


# ---------------------------------------------------------------- Haystack pipelines


def check_pipeline(p: HaystackPipeline, generator: FakeGenerator, inputs) -> str:
    """Evidence reaches the generator; a refusal reaches NoEvidence only.
    Returns the generator's prompt."""
    out = p.run(inputs(ON_TOPIC))
    assert out["llm"]["replies"] == [ANSWER] and "no_evidence" not in out
    assert len(generator.prompts) == 1 and ON_TOPIC in generator.prompts[0]
    prompt = generator.prompts[0]

    out = p.run(inputs(OFF_TOPIC))
    assert out["no_evidence"]["replies"] == [NO_EVIDENCE]
    assert out["no_evidence"]["reason"].startswith("no candidate reaches the relevance floor")
    assert "llm" not in out and len(generator.prompts) == 1, "the LLM ran despite the refusal"
    return prompt


def test_pipeline_with_the_retriever(pipe):
    retriever = SecondOpinionRetriever(pipe, candidates=CANDIDATES, top_k=3)
    p, generator = answer_or_refuse(
        {"retriever": retriever},
        [("retriever.documents", "prompt.documents"), ("retriever.refusal", "no_evidence.refusal")],
    )
    prompt = check_pipeline(
        p, generator, lambda q: {"retriever": {"query": q}, "prompt": {"query": q}}
    )
    evidence = retriever.run(ON_TOPIC)["documents"]
    assert evidence[0].id == ANSWER_ID
    assert all(d.content in prompt for d in evidence)


def test_pipeline_with_bm25_and_the_ranker(pipe, corpus_documents):
    store = InMemoryDocumentStore()
    store.write_documents(corpus_documents)
    ranker = SecondOpinionRanker(pipe.cross_encoder, top_k=3)
    p, generator = answer_or_refuse(
        # BM25 ranks the answer low (the demo's queries are worded for that): fetch
        # every document and let the ranker judge.
        {"bm25": InMemoryBM25Retriever(store, top_k=len(corpus_documents)), "ranker": ranker},
        [
            ("bm25.documents", "ranker.documents"),
            ("ranker.documents", "prompt.documents"),
            ("ranker.refusal", "no_evidence.refusal"),
        ],
    )
    prompt = check_pipeline(
        p,
        generator,
        lambda q: {"bm25": {"query": q}, "ranker": {"query": q}, "prompt": {"query": q}},
    )
    by_id = {d.id: d for d in corpus_documents}
    assert by_id[ANSWER_ID].content in prompt
