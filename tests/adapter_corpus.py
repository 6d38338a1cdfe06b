"""What the framework adapter tests share: the bundled demo corpus, two
questions, and the reference each adapter is checked against.

The questions are chosen with wide margins under the package's default
models: the on-topic one is answered by ``ibuprofen-dose-children`` (the
pipeline's relevance ~0.88 against a floor of ~0.44; the cross-encoder alone
~0.76 against 0.5), and nothing in the corpus answers the off-topic one (best
~0.24 and ~0.09). Each test also checks the same decision on
``Pipeline.search`` or ``CrossEncoder.predict`` directly, so a model change
that moves them fails here with the reason in view.
"""

from __future__ import annotations

from secondopinion.beir import load_demo_corpus

ON_TOPIC = "how much ibuprofen can a 6 year old take"
ANSWER_ID = "ibuprofen-dose-children"
OFF_TOPIC = "What is the capital of Mongolia?"
#: What the test chains answer when the gate refuses.
NO_EVIDENCE = "I don't have evidence for that."
#: Fused candidates per query (the corpus has ~40 passages).
CANDIDATES = 20


def demo_documents() -> list[dict[str, str]]:
    """The demo corpus as ``{"id", "title", "text"}`` dicts."""
    corpus = load_demo_corpus()
    return [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts, strict=True)
    ]


def kept_by_reference(
    scores: list[float], logits: list[float], floor: float, top_n: int | None
) -> list[int]:
    """Positions the gate should keep, by a plain Python reading of its rule:
    probability >= floor, best first (the probability is a monotone function
    of the logit, which breaks float32 ties; then the lower position), at
    most top_n."""
    order = sorted(range(len(scores)), key=lambda i: (-logits[i], i))
    kept = [i for i in order if scores[i] >= floor]
    return kept if top_n is None else kept[:top_n]
