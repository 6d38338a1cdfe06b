"""BM25 retrieval: Lucene's BM25 over an inverted index in C++.

Scoring is Lucene's (and Anserini's, and bm25s's ``method="lucene"``)::

    score(q, d) = sum_{t in q} idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df + 0.5) / (df + 0.5))

with ``|d|`` the number of terms of ``d`` after analysis (title and text
together). A term repeated in the query counts once per occurrence, as a Lucene
BooleanQuery with one clause per query token scores it. The index keeps raw
term frequencies and document lengths, so ``k1`` and ``b`` can be overridden on
every search without re-indexing.

Only documents containing at least one query term are returned (they all score
> 0), so a search gives ``min(k, matching documents)`` hits; an empty query, a
query of stop words or of unknown terms gives empty ``Hits``. Ties are broken by
the lower document index.

Example::

    index = BM25Index.build(["Ibuprofen dosage for children", "Acetaminophen for adults"])
    hits = index.search("children ibuprofen", k=10)
    index.save("corpus.bm25")
    index = BM25Index.load("corpus.bm25")
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _core
from .hits import Hits

__all__ = ["ENGLISH_STOPWORDS", "STEMMERS", "Analyzer", "BM25Index"]

#: Lucene's default English stop set (the one Anserini uses), sorted.
ENGLISH_STOPWORDS: tuple[str, ...] = tuple(_core.english_stopwords())
#: Snowball algorithms the analyzer offers: Porter's original ("porter", Anserini's
#: choice), Porter2 ("english", PyStemmer's default English), or no stemming.
STEMMERS: tuple[str, ...] = ("porter", "english", "none")

#: Corpora at least this large get a progress bar unless ``show_progress`` says otherwise.
PROGRESS_MIN_DOCS = 100_000
#: Documents handed to C++ per call: large enough to amortise the call and the
#: thread start-up, small enough for a responsive progress bar.
BUILD_BATCH_DOCS = 8192

_EMPTY_INDICES = np.empty(0, dtype=np.int64)


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _stopword_list(stopwords: str | Iterable[str] | None) -> list[str]:
    if stopwords is None:
        return []
    if isinstance(stopwords, str):
        if stopwords == "english":
            return list(ENGLISH_STOPWORDS)
        raise ValueError(
            f"stopwords must be 'english', None or an iterable of str, got {stopwords!r}"
        )
    words = list(stopwords)
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise TypeError(f"stopwords[{i}] must be str, got {type(w).__name__}")
        _check_unicode(w, f"stopwords[{i}]")
    return words


def _check_unicode(text: str, name: str) -> None:
    """Refuse a lone surrogate: such a str has no UTF-8 form to store and give back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{name} holds a lone surrogate at position {exc.start} (not valid Unicode): {text!r}"
        ) from None


def _stemmer_name(stemmer: str | None) -> str:
    if stemmer is None:
        return "none"
    if stemmer not in STEMMERS:
        raise ValueError(f"stemmer must be 'porter', 'english' or None, got {stemmer!r}")
    return stemmer


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _check_params(k1: float, b: float) -> tuple[float, float]:
    k1 = float(k1)
    b = float(b)
    if not math.isfinite(k1) or k1 < 0:
        raise ValueError(f"k1 must be a finite number >= 0, got {k1}")
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"b must be in [0, 1], got {b}")
    return k1, b


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return int(threads)


def _check_query(query: object, name: str = "query") -> None:
    if not isinstance(query, str):
        raise TypeError(f"{name} must be str, got {type(query).__name__}")


class Analyzer:
    """The text analysis BM25 indexing and querying share.

    Steps, in Lucene's order, each switchable:

    1. split into words: maximal runs of Unicode letters, numbers and combining
       marks; everything else separates (so does ill-formed UTF-8 in ``bytes``
       input, and lone surrogates in ``str``: they read as U+FFFD, a separator);
    2. lower-case with Unicode's simple mapping, all scripts (``lowercase``);
    3. drop stop words, matched exactly after lower-casing, before stemming
       (``stopwords``: ``"english"``, ``None`` or your own words);
    4. stem with Snowball (``stemmer``: ``"porter"``, ``"english"`` (Porter2) or
       ``None``).
    """

    def __init__(
        self,
        *,
        lowercase: bool = True,
        stopwords: str | Iterable[str] | None = "english",
        stemmer: str | None = "porter",
    ) -> None:
        self._native = _core.Analyzer(
            bool(lowercase), _stopword_list(stopwords), _stemmer_name(stemmer)
        )

    @classmethod
    def _wrap(cls, native: Any) -> Analyzer:  # noqa: ANN401 - a _core.Analyzer
        self = cls.__new__(cls)
        self._native = native
        return self

    def tokenize(self, text: str | bytes) -> list[str]:
        """The terms of ``text``, in order (``bytes`` are read as UTF-8)."""
        if not isinstance(text, (str, bytes)):
            raise TypeError(f"text must be str or bytes, got {type(text).__name__}")
        return self._native.tokenize(text)

    __call__ = tokenize

    @property
    def lowercase(self) -> bool:
        return bool(self._native.lowercase)

    @property
    def stemmer(self) -> str | None:
        name = self._native.stemmer
        return None if name == "none" else name

    @property
    def stopwords(self) -> tuple[str, ...]:
        """The stop words, sorted."""
        return tuple(self._native.stopwords)

    def __repr__(self) -> str:
        stop = "english" if self.stopwords == ENGLISH_STOPWORDS else f"{len(self.stopwords)} words"
        return f"Analyzer(lowercase={self.lowercase}, stopwords={stop}, stemmer={self.stemmer!r})"


def _split_documents(
    texts: Iterable[str] | Iterable[Mapping[str, Any]],
    ids: Iterable[str | int] | None,
    titles: Iterable[str] | None,
) -> tuple[list[Any], list[Any] | None, list[str]]:
    """Texts, titles and ids as parallel lists, validated."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of documents, not a single str")
    docs = list(texts)
    if not docs:
        raise ValueError("texts is empty: cannot build a BM25 index from an empty corpus")
    n = len(docs)
    doc_ids: list[Any] | None = None
    if isinstance(docs[0], Mapping):
        if titles is not None:
            raise ValueError("pass titles either inside the documents or as titles=, not both")
        text_list: list[Any] = []
        title_list: list[Any] | None = []
        doc_ids = []
        for i, d in enumerate(docs):
            if not isinstance(d, Mapping):
                raise TypeError(f"texts[{i}] must be a dict like texts[0], got {type(d).__name__}")
            text_list.append(d.get("text") or "")
            title_list.append(d.get("title") or "")
            doc_ids.append(d.get("id", d.get("_id")))
    else:
        text_list = docs
        title_list = None
        if titles is not None:
            title_list = ["" if t is None else t for t in titles]
            if len(title_list) != n:
                raise ValueError(f"titles has {len(title_list)} entries for {n} texts")

    if ids is not None:
        doc_ids = list(ids)
        if len(doc_ids) != n:
            raise ValueError(f"ids has {len(doc_ids)} entries for {n} texts")
    elif doc_ids is None or any(i is None for i in doc_ids):
        if doc_ids is not None:
            missing = next(i for i, v in enumerate(doc_ids) if v is None)
            raise ValueError(f"texts[{missing}] has no 'id' (or '_id'); give every document one")
        doc_ids = [str(i) for i in range(n)]

    id_list: list[str] = []
    for i, v in enumerate(doc_ids):
        if isinstance(v, str):
            _check_unicode(v, f"ids[{i}]")
            id_list.append(v)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            id_list.append(str(int(v)))
        else:
            raise TypeError(f"ids[{i}] must be str or int, got {type(v).__name__}")
    if len(set(id_list)) != n:
        first: dict[str, int] = {}
        for i, v in enumerate(id_list):
            if v in first:
                raise ValueError(f"duplicate document id {v!r} (documents {first[v]} and {i})")
            first[v] = i
    return text_list, title_list, id_list


class BM25Index:
    """A BM25 index over a corpus; build with :meth:`build`, reopen with :meth:`load`."""

    def __init__(self, native: Any, ids: np.ndarray) -> None:  # noqa: ANN401 - _core.BM25Index
        """Internal: use :meth:`build` or :meth:`load`."""
        ids.flags.writeable = False  # positions are the index's; ids must not drift
        self._native = native
        self._ids = ids

    @classmethod
    def build(
        cls,
        texts: Iterable[str] | Iterable[Mapping[str, Any]],
        ids: Iterable[str | int] | None = None,
        *,
        titles: Iterable[str] | None = None,
        k1: float = 0.9,
        b: float = 0.4,
        stemmer: str | None = "porter",
        stopwords: str | Iterable[str] | None = "english",
        lowercase: bool = True,
        threads: int | None = None,
        show_progress: bool | None = None,
    ) -> BM25Index:
        """Index a corpus.

        Args:
            texts: documents, either strings or mappings with ``"text"`` and
                optionally ``"title"`` and ``"id"`` (or ``"_id"``, as in BEIR's
                corpus.jsonl). A title is indexed with its text as one document.
            ids: document ids (str, or int converted to str), distinct; they
                override ids inside mappings. Default: the positions "0", "1", ...
            titles: titles for string ``texts``, one per text (None for no title).
            k1, b: default BM25 parameters (each search may override them).
            stemmer, stopwords, lowercase: the :class:`Analyzer` settings, saved
                with the index and applied to queries too.
            threads: analysis threads (default: the CPUs this process may use).
            show_progress: a progress bar on stderr; default: for corpora of at
                least ``PROGRESS_MIN_DOCS`` documents.

        Raises:
            ValueError: an empty corpus, duplicate ids, mismatched lengths, bad
                parameters. TypeError: a document or id of the wrong type.
        """
        k1, b = _check_params(k1, b)
        threads = _check_threads(threads)
        analyzer_stop = _stopword_list(stopwords)
        analyzer_stem = _stemmer_name(stemmer)
        text_list, title_list, id_list = _split_documents(texts, ids, titles)
        n = len(text_list)
        if show_progress is None:
            show_progress = n >= PROGRESS_MIN_DOCS

        builder = _core.BM25Builder(bool(lowercase), analyzer_stop, analyzer_stem, threads)
        from tqdm.auto import tqdm

        with tqdm(
            total=n, unit="doc", desc="BM25 index", disable=not show_progress, file=sys.stderr
        ) as bar:
            for start in range(0, n, BUILD_BATCH_DOCS):
                stop = min(n, start + BUILD_BATCH_DOCS)
                batch_titles = None if title_list is None else title_list[start:stop]
                builder.add(text_list[start:stop], batch_titles)
                bar.update(stop - start)
        native = builder.finish(id_list, k1, b)
        return cls(native, np.array(id_list, dtype=object))

    # ------------------------------------------------------------------ search

    def _params(self, k1: float | None, b: float | None) -> tuple[float, float]:
        if k1 is None and b is None:
            return self._native.k1, self._native.b
        return _check_params(
            self._native.k1 if k1 is None else k1, self._native.b if b is None else b
        )

    def _hits(self, indices: np.ndarray, scores: np.ndarray) -> Hits:
        return Hits(indices=indices, scores=scores, ids=self._ids[indices])

    def search(
        self, query: str, k: int = 100, *, k1: float | None = None, b: float | None = None
    ) -> Hits:
        """The best ``k`` documents for ``query`` (fewer if fewer contain a query term).

        ``k1`` and ``b`` override the index's defaults for this search only.
        """
        _check_query(query)
        k = _check_k(k)
        k1_, b_ = self._params(k1, b)
        indices, scores = self._native.search(query, k, k1_, b_)
        return self._hits(indices, scores)

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 100,
        *,
        k1: float | None = None,
        b: float | None = None,
        threads: int | None = None,
    ) -> list[Hits]:
        """``[search(q, k) for q in queries]``, run on ``threads`` threads in C++."""
        if isinstance(queries, (str, bytes)):
            raise TypeError("queries must be a sequence of str, not a single str")
        queries = list(queries)
        for i, q in enumerate(queries):
            _check_query(q, f"queries[{i}]")
        k = _check_k(k)
        k1_, b_ = self._params(k1, b)
        threads = _check_threads(threads)
        results = self._native.search_batch(queries, k, k1_, b_, threads)
        return [self._hits(indices, scores) for indices, scores in results]

    def scores(self, query: str, *, k1: float | None = None, b: float | None = None) -> np.ndarray:
        """The BM25 score of every document for ``query`` (float32, 0 where no term matches)."""
        _check_query(query)
        k1_, b_ = self._params(k1, b)
        return self._native.score_all(query, k1_, b_)

    # --------------------------------------------------------------- storage

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index (with its ids, analyzer and default k1, b) to ``path``.

        The file is versioned and checksummed; it is written under a temporary
        name and renamed, so ``path`` never holds a partial index.
        """
        self._native.save(os.fsencode(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = True) -> BM25Index:
        """Open an index written by :meth:`save`.

        With ``mmap`` (the default) the postings stay in the memory-mapped file
        and are paged in on demand; otherwise the file is read into memory.
        Either way the checksum and the file's structure are verified first.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a valid index (foreign, truncated,
                corrupt, or from a newer format version); the message says which.
        """
        # fsencode: a file name that is not UTF-8 (surrogate-escaped) still opens.
        native = _core.BM25Index.load(os.fsencode(path), bool(mmap))
        # The C++ core stores bytes; Python needs its ids and stop words as
        # UTF-8 (a file written from C++ or crafted may hold other bytes).
        try:
            ids = native.doc_ids()
            native.analyzer.stopwords  # noqa: B018 - decoded here to fail at load
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"'{os.fsdecode(path)}' is not a valid BM25 index for Python: its document ids "
                f"and stop words must be UTF-8 ({exc})"
            ) from None
        return cls(native, np.array(ids, dtype=object))

    # ------------------------------------------------------------ properties

    @property
    def ids(self) -> np.ndarray:
        """Document ids by index position (object array of str)."""
        return self._ids

    @property
    def num_docs(self) -> int:
        return int(self._native.num_docs)

    def __len__(self) -> int:
        return self.num_docs

    @property
    def num_terms(self) -> int:
        return int(self._native.num_terms)

    @property
    def num_postings(self) -> int:
        return int(self._native.num_postings)

    @property
    def avg_doc_length(self) -> float:
        return float(self._native.avg_doc_length)

    @property
    def doc_lengths(self) -> np.ndarray:
        """Terms per document after analysis (uint32), the ``|d|`` of the formula."""
        return self._native.doc_lengths()

    def doc_freq(self, term: str) -> int:
        """How many documents contain ``term`` (an analysed term: ``analyzer.tokenize`` output)."""
        _check_query(term, "term")
        # surrogatepass: a lone surrogate (never part of a term) finds nothing.
        return int(self._native.doc_freq(term.encode("utf-8", "surrogatepass")))

    @property
    def k1(self) -> float:
        return float(self._native.k1)

    @property
    def b(self) -> float:
        return float(self._native.b)

    @property
    def analyzer(self) -> Analyzer:
        return Analyzer._wrap(self._native.analyzer)

    def __repr__(self) -> str:
        return (
            f"BM25Index(docs={self.num_docs}, terms={self.num_terms}, "
            f"k1={self.k1:g}, b={self.b:g}, {self.analyzer!r})"
        )
