"""The main job of ``make demo``: the whole pipeline over the bundled demo corpus.

The ~40 demo passages are indexed with the default models (BM25 + dense,
fused), and each demo query is searched: the cross-encoder re-judges the fused
candidates and the gate keeps what clears the floor. Per query, a table shows
every stage's rank beside the final rank and the relevance probability, with
the floor drawn where it cuts. The summary then checks the three things the
demo is for:

1. the cross-encoder puts the answering passage first where stage 1 did not;
2. the floor trims a weak tail (candidates ranked but not returned);
3. the off-topic question gets an honest refusal rather than least-bad chunks.

It reports what happened, including when a model falls short of one of them.
"""

from __future__ import annotations

from typing import TextIO

from .beir import load_demo_corpus, load_demo_queries
from .embed import Embedder
from .gate import Evidence
from .pipeline import Pipeline
from .rerank import CrossEncoder

#: Candidates the cross-encoder judges per query (the corpus is small).
CANDIDATES = 20
#: Chunks the gate may return.
TOP_N = 5
#: Candidates below the floor still shown, so the trimmed tail is visible.
SHOWN_BELOW_FLOOR = 3


def _cell(rank: int) -> str:
    return str(rank) if rank else "-"


def run_demo(
    out: TextIO,
    *,
    embedder: Embedder | None = None,
    cross_encoder: CrossEncoder | None = None,
    floor: float | None = None,
) -> int:
    """Print the demo to ``out``; models ``None`` load the package's defaults."""
    corpus = load_demo_corpus()
    documents = [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts, strict=True)
    ]
    pipe = Pipeline.from_corpus(
        documents, embedder=embedder, cross_encoder=cross_encoder, show_progress=False
    )
    ce = pipe.cross_encoder
    print(
        f"Indexed {len(pipe)} passages (BM25 + {pipe.retriever.dense.embedder.config.name} "
        f"dense, fused by {pipe.retriever.fusion.upper()}); reranking the top {CANDIDATES} "
        f"with {ce.config.name}, keeping at most {TOP_N}.",
        file=out,
    )
    promoted: list[str] = []
    trimmed: list[tuple[str, int]] = []
    refused_off_topic: list[str] = []
    answered_off_topic: list[tuple[str, float, float]] = []
    missed: list[str] = []

    for demo in load_demo_queries():
        result = pipe.search(demo.query, candidates=CANDIDATES, top_n=TOP_N, floor=floor)
        print(f"\nQuery: {demo.query}", file=out)
        print(
            f"  (the passage that answers it: {demo.answer})"
            if demo.answer
            else "  (no passage answers it)",
            file=out,
        )
        print(
            f"  {'final':>5}  {'prob':>6}  {'bm25':>4}  {'dense':>5}  {'fused':>5}  passage",
            file=out,
        )
        kept = sum(c.kept for c in result.candidates)
        shown = result.candidates[: max(kept, 1) + SHOWN_BELOW_FLOOR] if result.candidates else []
        answer_pos = next(
            (pos for pos, c in enumerate(result.candidates, start=1) if c.id == demo.answer), 0
        )
        rows = list(enumerate(shown, start=1))
        if answer_pos > len(shown):  # keep the answer in view, wherever it landed
            rows.append((answer_pos, result.candidates[answer_pos - 1]))
        for pos, c in rows:
            if pos > len(shown):
                print(f"  {'...':>5}", file=out)
            if pos == kept + 1:
                print(
                    f"  {'':->5}  floor {result.floor:.2f}, top {TOP_N}: not returned below",
                    file=out,
                )
            mark = "  <- answer" if c.id == demo.answer else ""
            print(
                f"  {pos:>5}  {c.score:6.3f}  {_cell(c.bm25_rank):>4}  {_cell(c.dense_rank):>5}"
                f"  {c.fused_rank:>5}  {c.id}{mark}",
                file=out,
            )
        answer = result.candidates[answer_pos - 1] if answer_pos else None
        if demo.answer and answer is None:
            print(f"  (the answer is not among the {CANDIDATES} candidates)", file=out)
        if isinstance(result, Evidence):
            dropped = len(result.candidates) - len(result.chunks)
            print(
                f"  -> evidence: {len(result.chunks)} chunk(s) kept, {dropped} candidate(s) "
                f"below the floor or past top {TOP_N} dropped",
                file=out,
            )
            if len(result.chunks) < TOP_N and dropped:
                trimmed.append((demo.query, len(result.chunks)))
        else:
            print(f"  -> REFUSED: {result.reason}", file=out)
        if demo.answer is None:
            if isinstance(result, Evidence):
                answered_off_topic.append((demo.query, result.best_score, result.floor))
            else:
                refused_off_topic.append(demo.query)
        elif answer is None:
            missed.append(f"{demo.query!r}: stage 1 did not retrieve {demo.answer}")
        elif result.candidates[0].id == demo.answer and answer.fused_rank > 1:
            promoted.append(f"{demo.query!r}: fused #{answer.fused_rank} -> #1")

    print("\nWhat the demo shows:", file=out)
    print(
        f"  (1) the cross-encoder put the answer first where stage 1 did not: "
        f"{len(promoted)} quer{'y' if len(promoted) == 1 else 'ies'}",
        file=out,
    )
    for line in promoted:
        print(f"        {line}", file=out)
    print(
        f"  (2) the floor trimmed a weak tail (fewer than {TOP_N} kept): "
        f"{len(trimmed)} quer{'y' if len(trimmed) == 1 else 'ies'}",
        file=out,
    )
    for query, n in trimmed:
        print(f"        {query!r}: {n} kept", file=out)
    if refused_off_topic:
        print(f"  (3) honest refusal of the off-topic question: {refused_off_topic[0]!r}", file=out)
    for query, best, used in answered_off_topic:
        print(
            f"  (3) NOT refused: {query!r} got evidence (best {best:.3f} >= floor {used:.3f})",
            file=out,
        )
    for line in missed:
        print(f"  recall miss: {line}", file=out)
    return 0
