"""Measure the default pipeline's gate on the hand-written near-miss set.

The set (`tools/data/nearmiss/`, see its README) is measure-only: nothing is fitted,
tuned or chosen on it. For every group the answerable query runs through
`Pipeline.search` over the whole set (486 chunks), and the tool reports the issue's
targets:

- answer first: the group's answer chunk is the gate's top candidate;
- answers kept, near-misses kept (by kind), same-word chunks kept;
- unanswerable queries refused;
- score invariance: each group's answer and near-misses scored again inside a
  5-chunk corpus (the group's four chunks and one filler chunk of its domain);
  an absolute score moves by nothing, a sort key moves.

    python tools/measure_nearmiss.py --out build/nearmiss.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nearmiss  # noqa: E402

from secondopinion import Pipeline  # noqa: E402

ROLES = ("answer", "near_miss_attribute", "near_miss_entity", "same_word")


def _docs(corpus: dict[str, tuple[str, str]], ids: list[str]) -> list[dict[str, str]]:
    return [{"id": d, "title": corpus[d][0], "text": corpus[d][1]} for d in ids]


def measure(candidates: int, floor: float | None) -> dict:
    s = nearmiss.load()
    ids = sorted(s.corpus)
    pipe = Pipeline.from_corpus(_docs(s.corpus, ids))
    groups = sorted({g for g in s.group_of.values() if g})
    first = 0
    kept: dict[str, list[bool]] = {r: [] for r in ROLES}
    scores: dict[str, dict[str, float]] = {}
    for g in groups:
        res = pipe.search(s.queries[f"{g}/q"], candidates=candidates, floor=floor)
        by_id = {c.id: c for c in res.candidates}
        order = [c.id for c in res.candidates]
        first += bool(order) and order[0] == f"{g}/answer"
        scores[g] = {}
        for r in ROLES:
            c = by_id.get(f"{g}/{r}")
            kept[r].append(bool(c is not None and c.kept))
            scores[g][r] = float(c.score) if c is not None else float("nan")
    refused = []
    for qid in s.unanswerable:
        res = pipe.search(s.queries[qid], candidates=candidates, floor=floor)
        refused.append(res.status == "refusal")
    # The same pairs inside a 5-chunk corpus.
    moved = []
    for g in groups:
        dom = s.domain_of[f"{g}/q"]
        small_ids = [f"{g}/{r}" for r in ROLES] + [f"{dom}/filler-01"]
        small = Pipeline.from_corpus(_docs(s.corpus, small_ids))
        res = small.search(s.queries[f"{g}/q"], candidates=candidates, floor=floor)
        for c in res.candidates:
            role = c.id.split("/", 1)[1]
            if role in ROLES and scores[g][role] == scores[g][role]:
                moved.append(abs(c.score - scores[g][role]))
    moved.sort()

    def share(xs: list[bool]) -> float:
        return round(sum(xs) / len(xs), 4) if xs else float("nan")

    return {
        "groups": len(groups),
        "unanswerable_queries": len(s.unanswerable),
        "candidates": candidates,
        "floor": floor if floor is not None else pipe.search("x", candidates=1).floor,
        "answer_first": round(first / len(groups), 4),
        "kept": {r: share(v) for r, v in kept.items()},
        "near_misses_kept": share(kept["near_miss_attribute"] + kept["near_miss_entity"]),
        "unanswerable_refused": share(refused),
        "score_moved_5_chunk_corpus": {
            "pairs": len(moved),
            "median": round(statistics.median(moved), 4) if moved else None,
            "p90": round(moved[int(0.9 * (len(moved) - 1))], 4) if moved else None,
            "max": round(moved[-1], 4) if moved else None,
        },
        "scores": scores,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--floor", type=float, default=None, help="default: the model's own")
    p.add_argument("--out", type=Path, default=None, help="write the full result as JSON")
    args = p.parse_args(argv)
    res = measure(args.candidates, args.floor)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "scores"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
