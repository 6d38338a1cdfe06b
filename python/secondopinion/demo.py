"""The main job of ``make demo``: retrieval over the bundled demo corpus.

Two BM25 legs over the same passages, fused by reciprocal rank: one with the
full analyzer (stop words, Porter stemming) and one matching exact words. The
table shows each leg's rank beside the fused result, so the effect of fusion
is visible per passage.
"""

from __future__ import annotations

from typing import TextIO

from .beir import load_demo_corpus, load_demo_queries
from .bm25 import BM25Index
from .fusion import fuse_rrf

TOP = 5


def run_demo(out: TextIO) -> int:
    corpus = load_demo_corpus()
    texts = corpus.indexable_texts()
    stemmed = BM25Index.build(texts, ids=corpus.ids)
    exact = BM25Index.build(texts, ids=corpus.ids, stemmer=None, stopwords=None)
    print(
        f"Indexed {len(corpus)} passages twice: stemmed ({stemmed.num_terms} terms) "
        f"and exact words ({exact.num_terms} terms); fused by RRF (k=60).",
        file=out,
    )
    for demo in load_demo_queries():
        legs = [stemmed.search(demo.query, k=50), exact.search(demo.query, k=50)]
        fused = fuse_rrf(legs, k=60, limit=TOP)
        print(f"\nQuery: {demo.query}", file=out)
        if demo.answer:
            print(f"  (the passage that answers it: {demo.answer})", file=out)
        else:
            print("  (no passage answers it)", file=out)
        if len(fused) == 0:
            print("  no passage shares a word with the query", file=out)
            continue
        print(f"  {'#':>2}  {'fused':>7}  {'stem':>4}  {'exact':>5}  passage", file=out)
        for pos in range(len(fused)):
            doc = str(fused.ids[pos])
            ranks = [int(r) for r in fused.stage_ranks[:, pos]]
            cells = [str(r) if r else "-" for r in ranks]
            mark = "  <- answer" if doc == demo.answer else ""
            print(
                f"  {pos + 1:>2}  {float(fused.scores[pos]):7.4f}  {cells[0]:>4}  {cells[1]:>5}"
                f"  {doc}{mark}",
                file=out,
            )
    return 0
