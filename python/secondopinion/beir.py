"""Reading a dataset in the BEIR layout.

A BEIR folder holds::

    corpus.jsonl        one JSON object a line: "_id", "text", optional "title"
    queries.jsonl       one JSON object a line: "_id", "text"
    qrels/<split>.tsv   a header line, then "query-id<TAB>corpus-id<TAB>score"

Anything else in an object ("metadata", ...) is ignored. Ids are strings (an
integer id is read as its decimal string). Blank lines are skipped. A line that
cannot be read raises :class:`BeirFormatError` naming the file and the line; a
missing file raises :class:`FileNotFoundError` saying what was expected there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "BeirDataset",
    "BeirFormatError",
    "Corpus",
    "DemoQuery",
    "Qrels",
    "load_beir",
    "load_corpus",
    "load_demo_corpus",
    "load_demo_queries",
    "load_qrels",
    "load_queries",
]

#: query id -> document id -> graded relevance (as in the file; may be 0 or negative).
Qrels = dict[str, dict[str, int]]


class BeirFormatError(ValueError):
    """A BEIR file that cannot be read; the message starts with ``path:line:``
    (or ``path:`` when the problem is not on one line)."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class Corpus:
    """The documents, column by column, in file order.

    Position ``i`` in these lists is the document's index: the int64 that
    retrieval stages return in ``Hits.indices``.
    """

    ids: list[str]
    titles: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def indexable_texts(self) -> list[str]:
        """Title and text together, as BEIR's BM25 baselines index them."""
        return [
            f"{title} {text}" if title else text
            for title, text in zip(self.titles, self.texts, strict=True)
        ]


@dataclass(frozen=True)
class BeirDataset:
    """A corpus, its queries and the relevance judgements of one split."""

    corpus: Corpus
    queries: dict[str, str]
    qrels: Qrels
    split: str

    def judged_queries(self) -> Iterator[tuple[str, str]]:
        """(query id, text) of the queries the split judges, in queries.jsonl order:
        the ones an evaluation runs."""
        return ((qid, text) for qid, text in self.queries.items() if qid in self.qrels)


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from folder.

    Raises:
        FileNotFoundError: folder or one of the files is missing (the message
            lists the splits that are there).
        BeirFormatError: a line cannot be read, an id repeats, or the qrels
            judge a query that queries.jsonl lacks.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no BEIR dataset folder at {folder!r}")
    qrels_path = os.path.join(folder, "qrels", f"{split}.tsv")
    if not os.path.isfile(qrels_path):
        qrels_dir = os.path.join(folder, "qrels")
        there = (
            sorted(f[: -len(".tsv")] for f in os.listdir(qrels_dir) if f.endswith(".tsv"))
            if os.path.isdir(qrels_dir)
            else []
        )
        raise FileNotFoundError(
            f"no qrels for split {split!r}: expected {qrels_path!r}"
            + (f"; splits there: {', '.join(there)}" if there else "; the folder has no qrels/")
        )
    corpus = load_corpus(os.path.join(folder, "corpus.jsonl"))
    queries_path = os.path.join(folder, "queries.jsonl")
    queries = load_queries(queries_path)
    qrels = load_qrels(qrels_path)
    unknown = [qid for qid in qrels if qid not in queries]
    if unknown:
        shown = ", ".join(repr(q) for q in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise BeirFormatError(
            qrels_path,
            None,
            f"{len(unknown)} judged queries are not in {queries_path}: {shown}",
        )
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, split=split)


def load_corpus(path: str | os.PathLike[str]) -> Corpus:
    """Read a BEIR ``corpus.jsonl``: ``_id`` and ``text`` required, ``title`` optional."""
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    first_line: dict[str, int] = {}
    for path_, number, record in _json_lines(path, "corpus"):
        doc_id = _id_of(record, path_, number)
        if doc_id in first_line:
            raise BeirFormatError(
                path_, number, f"document id {doc_id!r} already used on line {first_line[doc_id]}"
            )
        first_line[doc_id] = number
        ids.append(doc_id)
        titles.append(_text_field(record, "title", path_, number, required=False))
        texts.append(_text_field(record, "text", path_, number, required=True))
    return Corpus(ids=ids, titles=titles, texts=texts)


def load_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl`` into query id -> text, in file order."""
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for path_, number, record in _json_lines(path, "queries"):
        qid = _id_of(record, path_, number)
        if qid in first_line:
            raise BeirFormatError(
                path_, number, f"query id {qid!r} already used on line {first_line[qid]}"
            )
        first_line[qid] = number
        queries[qid] = _text_field(record, "text", path_, number, required=True)
    return queries


def load_qrels(path: str | os.PathLike[str]) -> Qrels:
    """Read a BEIR qrels ``.tsv``: a header line, then query id, document id and
    an integer relevance, tab-separated. A pair judged twice is an error."""
    path = os.fspath(path)
    qrels: Qrels = {}
    for number, line in _numbered_lines(path, "qrels"):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if number == 1 and _is_header(fields):
            continue
        if len(fields) != 3:
            raise BeirFormatError(
                path,
                number,
                f"expected 3 tab-separated fields (query-id, corpus-id, score), "
                f"got {len(fields)}: {line[:80]!r}",
            )
        qid, doc_id, score = (f.strip() for f in fields)
        if not qid or not doc_id:
            raise BeirFormatError(path, number, "empty query or document id")
        try:
            relevance = int(score)
        except ValueError:
            raise BeirFormatError(
                path, number, f"relevance must be an integer, got {score!r}"
            ) from None
        judged = qrels.setdefault(qid, {})
        if doc_id in judged:
            raise BeirFormatError(path, number, f"query {qid!r} judges document {doc_id!r} twice")
        judged[doc_id] = relevance
    return qrels


# --- the demo data shipped with the package ----------------------------------------


@dataclass(frozen=True)
class DemoQuery:
    """A demo query and the id of the passage that answers it (None: nothing
    in the demo corpus does, and a good system should say so)."""

    query: str
    answer: str | None
    note: str | None


def load_demo_corpus() -> Corpus:
    """The ~40 passages shipped in ``secondopinion/data/demo_corpus.jsonl``:
    ibuprofen and its neighbours (dosing by age, acetaminophen, naproxen,
    aspirin, fever, storage, overdose) and a few unrelated topics."""
    return load_corpus(_data_path("demo_corpus.jsonl"))


def load_demo_queries() -> list[DemoQuery]:
    """The demo queries with their answers, from ``demo_queries.json``; some
    are worded so that plain term matching ranks a wrong passage first."""
    with open(_data_path("demo_queries.json"), encoding="utf-8") as file:
        return [DemoQuery(q["query"], q["answer"], q.get("note")) for q in json.load(file)]


def _data_path(name: str) -> str:
    return str(resources.files("secondopinion").joinpath("data", name))


# --- helpers ----------------------------------------------------------------------


def _numbered_lines(path: str, what: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 file, decoded line by line so that a
    decoding error can name its line; a byte-order mark is dropped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {what} file at {path!r} (BEIR layout expected)")
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise BeirFormatError(path, number, f"not UTF-8 ({e.reason})") from None
            yield number, line


def _json_lines(path: str | os.PathLike[str], what: str) -> Iterator[tuple[str, int, dict]]:
    path = os.fspath(path)
    for number, line in _numbered_lines(path, what):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise BeirFormatError(path, number, f"invalid JSON: {e.msg}") from None
        if not isinstance(record, dict):
            raise BeirFormatError(
                path, number, f"expected a JSON object, got {type(record).__name__}"
            )
        yield path, number, record


def _id_of(record: dict, path: str, number: int) -> str:
    value = record.get("_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problem = "missing" if value is None else f"a {type(value).__name__}"
        raise BeirFormatError(path, number, f'"_id" must be a string, got {problem}')
    value = str(value)
    if not value:
        raise BeirFormatError(path, number, '"_id" is empty')
    return value


def _text_field(record: dict, key: str, path: str, number: int, *, required: bool) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise BeirFormatError(path, number, f'missing "{key}"')
        return ""
    if not isinstance(value, str):
        raise BeirFormatError(path, number, f'"{key}" must be a string, got {type(value).__name__}')
    return value


def _is_header(fields: list[str]) -> bool:
    """BEIR's header is "query-id corpus-id score": three fields, the last no integer."""
    if len(fields) != 3:
        return False
    try:
        int(fields[-1])
    except ValueError:
        return True
    return False
