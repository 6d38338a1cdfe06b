"""Counterfactual near-misses: a passage that stays lexically close to a query and stops
answering it.

The rule: find the one thing the query asks about that the passage also states -- a
population, a named entity, a year, a number, a country, a month, an ordinal, a
direction, a unit -- and change it everywhere in the passage (or, for the twin, in
the query). "ibuprofen dosage for children" against a passage on the children's
dose becomes a passage on the adults' dose: same words, same topic, no answer.

Everything here is rules and word lists written for this project; no model, no
outside data. `python tools/counterfactuals.py --sample 40` prints a sample to check
by hand (the model card records the check).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Swap classes: a word is replaced by another member of its own class. Each class
# holds words that fill the same slot in a sentence, so the edit stays grammatical.
LEXICON: dict[str, list[str]] = {
    "population": [
        "children",
        "adults",
        "infants",
        "adolescents",
        "teenagers",
        "elderly",
        "women",
        "men",
        "students",
        "veterans",
        "seniors",
        "toddlers",
        "pregnant women",
    ],
    "population_singular": ["child", "adult", "infant", "adolescent", "teenager", "woman", "man"],
    "country": [
        "France",
        "Germany",
        "Italy",
        "Spain",
        "Portugal",
        "England",
        "Scotland",
        "Ireland",
        "China",
        "Japan",
        "Korea",
        "India",
        "Pakistan",
        "Russia",
        "Poland",
        "Austria",
        "Hungary",
        "Greece",
        "Turkey",
        "Egypt",
        "Nigeria",
        "Kenya",
        "Brazil",
        "Argentina",
        "Mexico",
        "Canada",
        "Australia",
        "Sweden",
        "Norway",
        "Denmark",
        "Finland",
        "Netherlands",
        "Belgium",
        "Switzerland",
        "Iran",
        "Iraq",
        "Israel",
        "Vietnam",
        "Thailand",
        "Indonesia",
        "Chile",
        "Peru",
        "Cuba",
        "Morocco",
        "Ethiopia",
    ],
    "nationality": [
        "American",
        "British",
        "French",
        "German",
        "Italian",
        "Spanish",
        "Portuguese",
        "Chinese",
        "Japanese",
        "Korean",
        "Indian",
        "Russian",
        "Polish",
        "Greek",
        "Turkish",
        "Egyptian",
        "Brazilian",
        "Mexican",
        "Canadian",
        "Australian",
        "Swedish",
        "Dutch",
        "Irish",
        "Scottish",
        "English",
        "Roman",
        "Persian",
        "Ottoman",
        "Austrian",
    ],
    "month": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "season": ["spring", "summer", "autumn", "winter"],
    "ordinal": [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "last",
    ],
    "direction": [
        "north",
        "south",
        "east",
        "west",
        "northern",
        "southern",
        "eastern",
        "western",
    ],
    "superlative": [
        "largest",
        "smallest",
        "oldest",
        "youngest",
        "highest",
        "lowest",
        "longest",
        "shortest",
        "earliest",
        "latest",
        "biggest",
    ],
    "unit": [
        "meters",
        "feet",
        "kilometers",
        "miles",
        "kilograms",
        "pounds",
        "tons",
        "liters",
        "gallons",
        "hours",
        "minutes",
        "days",
        "weeks",
        "months",
        "years",
        "percent",
    ],
    "century": [
        "15th",
        "16th",
        "17th",
        "18th",
        "19th",
        "20th",
        "21st",
        "12th",
        "13th",
        "14th",
    ],
}
# A word's class, by its lower-case form (case is restored on substitution).
_CLASS_OF = {w.lower(): c for c, ws in LEXICON.items() for w in ws}

_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
# A run of capitalised words (with "of", "the", "de" inside): a named entity's span.
_ENTITY = re.compile(r"\b[A-Z][\w'\-]*(?:\s+(?:(?:of|the|de|von|van|and|for)\s+)?[A-Z][\w'\-]*)*")
_QUESTION_WORDS = {
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "in",
    "the",
    "a",
    "an",
    "on",
    "at",
    "of",
    "for",
    "during",
    "after",
    "before",
    "is",
    "was",
    "were",
    "are",
    "did",
    "does",
    "do",
    "name",
    "according",
    "besides",
    "along",
    "other",
    "as",
    "to",
    "by",
    "from",
    "with",
    "if",
    "about",
    "since",
    "between",
}


@dataclass(frozen=True)
class Edit:
    """One change: `kind` of span, the text it had and the text it got."""

    kind: str
    before: str
    after: str


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word.lower() if template.islower() else word


def _sub_all(text: str, before: str, after: str, ignore_case: bool) -> tuple[str, int]:
    flags = re.IGNORECASE if ignore_case else 0
    pattern = re.compile(r"(?<![\w-])" + re.escape(before) + r"(?![\w-])", flags)
    return pattern.subn(lambda m: _match_case(m.group(0), after) if ignore_case else after, text)


def _entities(text: str) -> list[str]:
    """Capitalised spans, without a leading question word ("What", "In")."""
    out = []
    for m in _ENTITY.finditer(text):
        words = m.group(0).split()
        while words and words[0].lower() in _QUESTION_WORDS:
            words = words[1:]
        while words and words[-1].lower() in _QUESTION_WORDS:
            words = words[:-1]
        span = " ".join(words)
        if len(span) >= 3 and span.lower() not in _CLASS_OF:
            out.append(span)
    return out


class EntityPool:
    """Named entities seen in a corpus, by word count: where a swapped entity comes from."""

    def __init__(self, texts: Sequence[str], limit_per_length: int = 20000) -> None:
        # Common words capitalised only at a sentence start are not names.
        lower_words = {w for t in texts for w in re.findall(r"\b[a-z][\w'\-]*", t)}
        by_len: dict[int, set[str]] = {}
        for t in texts:
            for m in _ENTITY.finditer(t):
                before = t[: m.start()].rstrip()
                if not before or before[-1] in '.!?"':
                    continue
                e = m.group(0)
                n = len(e.split())
                if n == 1 and e.lower() in lower_words:
                    continue
                if n <= 4 and len(by_len.setdefault(n, set())) < limit_per_length:
                    by_len[n].add(e)
        self.by_len = {n: sorted(s) for n, s in by_len.items()}

    def other(self, span: str, rng: random.Random, avoid: str) -> str | None:
        pool = self.by_len.get(len(span.split()))
        if not pool:
            return None
        for _ in range(20):
            cand = pool[rng.randrange(len(pool))]
            if cand.lower() not in avoid.lower() and cand.lower() != span.lower():
                return cand
        return None


def _candidates(query: str, passage: str) -> list[tuple[str, str]]:
    """(kind, span) that the query asks about and the passage states too."""
    found: list[tuple[str, str]] = []
    low_p = passage.lower()
    for m in _YEAR.finditer(query):
        if re.search(r"\b" + m.group(0) + r"\b", passage):
            found.append(("year", m.group(0)))
    for m in _NUMBER.finditer(query):
        s = m.group(0)
        if not _YEAR.fullmatch(s) and re.search(
            r"(?<![\w.])" + re.escape(s) + r"(?![\w])", passage
        ):
            found.append(("number", s))
    for w in re.findall(r"[A-Za-z0-9]+(?:\s+women)?", query):
        cls = _CLASS_OF.get(w.lower())
        if cls and re.search(r"(?<![\w-])" + re.escape(w.lower()) + r"(?![\w-])", low_p):
            found.append((cls, w))
    for e in _entities(query):
        if e in passage:
            found.append(("entity", e))
    return found


def _replacement(
    kind: str, span: str, rng: random.Random, pool: EntityPool | None, context: str
) -> str | None:
    if kind == "year":
        y = int(span)
        return str(y + rng.choice([-1, 1]) * rng.randint(2, 40))
    if kind == "number":
        if "," in span or "." in span:
            return None
        v = int(span)
        return str(max(0, v + rng.choice([-1, 1]) * max(1, rng.randint(1, max(2, v // 2 + 3)))))
    if kind == "entity":
        return pool.other(span, rng, context) if pool is not None else None
    members = [w for w in LEXICON[kind] if w.lower() != span.lower()]
    return rng.choice(members)


def near_miss(
    query: str,
    passage: str,
    rng: random.Random,
    pool: EntityPool | None = None,
    answer: str | None = None,
    side: str = "passage",
) -> tuple[str, Edit] | None:
    """Change what the query asks about, in the passage (`side="passage"`) or in the
    query (`side="query"`). Returns the edited text and the edit, or None when the
    pair shares nothing that can be changed. The answer string, when known, is never
    edited (the near-miss must lose the query's subject, not change the answer)."""
    if side not in ("passage", "query"):
        raise ValueError(f"side must be 'passage' or 'query', got {side!r}")
    cands = _candidates(query, passage)
    if answer:
        cands = [(k, s) for k, s in cands if s.lower() not in answer.lower()]
    if not cands:
        return None
    # Prefer the specific spans (entities, years, lexicon words) over bare numbers.
    rng.shuffle(cands)
    cands.sort(key=lambda c: c[0] == "number")
    for kind, span in cands:
        new = _replacement(kind, span, rng, pool, query + " " + passage)
        if not new or new.lower() == span.lower():
            continue
        target = passage if side == "passage" else query
        edited, n = _sub_all(target, span, new, ignore_case=kind not in ("entity",))
        if n == 0 or (side == "passage" and new.lower() in query.lower()):
            continue
        label = "population" if kind.startswith("population") else kind
        return edited, Edit(label, span, new)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--squad", type=Path, default=Path("../shared/data/squad"))
    p.add_argument("--sample", type=int, default=40)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    corpus = {}
    with open(args.squad / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            corpus[d["_id"]] = d["text"]
    queries = {}
    with open(args.squad / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            queries[d["_id"]] = d["text"]
    qrels = []
    with open(args.squad / "qrels" / "train.tsv", encoding="utf-8") as f:
        next(f)
        qrels = [line.split("\t")[:2] for line in f]
    rng = random.Random(args.seed)
    pool = EntityPool(list(corpus.values())[:5000])
    shown = made = 0
    for qid, did in rng.sample(qrels, 2000):
        out = near_miss(queries[qid], corpus[did], rng, pool)
        if out is None:
            continue
        made += 1
        if shown < args.sample:
            shown += 1
            print(f"Q: {queries[qid].strip()}\n   {out[1]}")
    print(f"near-miss made for {made} of 2000 sampled questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
