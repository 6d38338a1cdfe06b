"""Tokenising texts and (query, passage) pairs into flat numpy arrays for the C++ core.

Truncation is done here, explicitly, and reported. A ``tokenizer.json`` may
carry its own truncation and padding (all-MiniLM-L6-v2's pads and cuts every
input to 128 tokens); both are switched off at load, once: the ``Tokenizer``
object is never mutated afterwards, so one :class:`ModelTokenizer` is safe to
share between threads (Hugging Face tokenizers raise "Already borrowed" when a
configuration change races an encode).

Texts are encoded without special tokens, cut to their budget, and wrapped in
the special tokens of the tokenizer's own post-processor, whose layout (e.g.
``[CLS] A [SEP] B [SEP]`` with type ids 0/1, or RoBERTa's
``<s> A </s></s> B </s>``) is read once at load by encoding a probe.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from .model_dir import ModelFormatError

# Very long texts are tokenised from a prefix first (see _encode_capped):
# tokenising a 10 MB passage whole takes seconds and gigabytes for tokens that
# are cut anyway. First try: this many characters per token of budget.
_CHARS_PER_TOKEN_CAP = 16
_MIN_CHAR_CAP = 4096
# Second try, for texts whose first prefix held too few whole words (huge
# whitespace runs, giant "words"); a text that even this prefix cannot decide
# is cut here, and reported as truncated.
_CHARS_PER_TOKEN_HARD_CAP = 256
_MIN_HARD_CHAR_CAP = 65536


@dataclass(frozen=True)
class TokenizedBatch:
    """Token sequences laid end to end: sequence i is ``ids[offsets[i]:offsets[i+1]]``.

    Attributes:
        ids: int64 token ids, special tokens included.
        type_ids: int64 token type (segment) ids, same layout.
        offsets: int64, ``n + 1`` entries.
        truncated: bool per sequence: its text (for pairs, the passage) lost tokens.
        query_truncated: bool per pair: the query was cut to ``query_max_tokens``
            (all False for single texts).
    """

    ids: np.ndarray
    type_ids: np.ndarray
    offsets: np.ndarray
    truncated: np.ndarray
    query_truncated: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def lengths(self) -> np.ndarray:
        """int64 tokens per sequence."""
        return np.diff(self.offsets)


@dataclass(frozen=True)
class _Template:
    """Where the post-processor puts special tokens around one or two texts."""

    prefix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix: tuple[int, ...]
    suffix_types: tuple[int, ...]
    first_type: int
    second_type: int

    @property
    def num_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


@contextlib.contextmanager
def _panics_as_format_errors(path: Path) -> Iterator[None]:
    """A Rust panic inside ``tokenizers`` becomes a ModelFormatError naming ``path``.

    Found by fuzzing: a tokenizer.json whose post-processor lacks a special
    token loads, then panics on every encode. pyo3 raises panics as
    ``PanicException``, a BaseException (so ``except Exception`` misses it).
    """
    try:
        yield
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise ModelFormatError(f"{path}: tokenizers failed on this file ({exc})") from None


def _read_template(tok: Tokenizer, path: Path, pair: bool) -> _Template:
    probe_a, probe_b = "a b", "c d"
    enc = tok.encode(probe_a, probe_b) if pair else tok.encode(probe_a)
    seq = enc.sequence_ids
    ids, types = enc.ids, enc.type_ids
    # Runs of equal sequence id: specials (None), then 0, specials, 1, specials.
    runs = [
        (key, [i for i, _ in grp]) for key, grp in itertools.groupby(enumerate(seq), lambda t: t[1])
    ]
    expected = [0, 1] if pair else [0]
    texts = [key for key, _ in runs if key is not None]
    if texts != expected:
        raise ModelFormatError(f"{path}: unsupported post-processor layout {enc.tokens}")
    parts: dict[str, list[int]] = {"prefix": [], "middle": [], "suffix": []}
    segment_types: dict[int, set[int]] = {0: set(), 1: set()}
    place = "prefix"
    for key, positions in runs:
        if key is None:
            parts[place].extend(positions)
        else:
            segment_types[key].update(types[i] for i in positions)
            place = "middle" if key == 0 and pair else "suffix"
    if any(len(s) > 1 for s in segment_types.values()):
        raise ModelFormatError(f"{path}: a text's tokens get mixed type ids {enc.type_ids}")
    template = _Template(
        prefix=tuple(ids[i] for i in parts["prefix"]),
        prefix_types=tuple(types[i] for i in parts["prefix"]),
        middle=tuple(ids[i] for i in parts["middle"]),
        middle_types=tuple(types[i] for i in parts["middle"]),
        suffix=tuple(ids[i] for i in parts["suffix"]),
        suffix_types=tuple(types[i] for i in parts["suffix"]),
        first_type=min(segment_types[0], default=0),
        second_type=min(segment_types[1], default=0),
    )
    # The layout must rebuild the tokenizer's own output from the bare texts.
    bare_a = tok.encode(probe_a, add_special_tokens=False).ids
    bare_b = tok.encode(probe_b, add_special_tokens=False).ids if pair else []
    rebuilt = (
        list(template.prefix) + bare_a + list(template.middle) + bare_b + list(template.suffix)
    )
    if rebuilt != ids:
        raise ModelFormatError(f"{path}: cannot reproduce the post-processor's output {enc.tokens}")
    if template.num_special == 0:
        # Found by fuzzing: an empty text then gives the model an empty sequence.
        raise ModelFormatError(
            f"{path}: the post-processor adds no special tokens around "
            f"{'a pair' if pair else 'a text'} (such as [CLS] and [SEP]); the models "
            "this library runs need them"
        )
    return template


class ModelTokenizer:
    """A model's ``tokenizer.json``, configured once and then only read.

    Args:
        path: the ``tokenizer.json`` file.
    """

    def __init__(self, path: Path) -> None:
        try:
            with _panics_as_format_errors(path):
                tok = Tokenizer.from_file(str(path))
        except ModelFormatError:
            raise
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ModelFormatError(f"{path}: not a valid tokenizer.json ({exc})") from None
        padding = tok.padding
        if padding is not None:
            pad_id = int(padding["pad_id"])
        else:
            candidates = (tok.token_to_id(t) for t in ("[PAD]", "<pad>"))
            pad_id = next((i for i in candidates if i is not None), 0)
        # Truncation and padding are ours to decide (see module docstring).
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        self.path = path
        #: Token id that fills padded positions (masked out; it only has to be valid).
        self.pad_id = pad_id
        with _panics_as_format_errors(path):
            self._single = _read_template(tok, path, pair=False)
            self._pair = _read_template(tok, path, pair=True)

    @property
    def special_tokens_single(self) -> int:
        """Special tokens added around one text."""
        return self._single.num_special

    @property
    def special_tokens_pair(self) -> int:
        """Special tokens added around a pair."""
        return self._pair.num_special

    def limits_batch(self, max_length: int, *, pair: bool) -> TokenizedBatch:
        """Sequences at the limits of what this tokenizer can send a model.

        One sequence of exactly ``max_length`` tokens whose text tokens are
        the largest id in the vocabulary, with the template's special tokens
        and type ids, and two short ones of different lengths (so one is
        padded with :attr:`pad_id` when there is room). A model that runs
        them accepts every token id, type id and position this tokenizer and
        ``max_length`` can produce. ``max_length`` must leave room for one
        text token (two for a pair).
        """
        t = self._pair if pair else self._single
        top = max(self._tok.get_vocab(with_added_tokens=True).values(), default=0)
        room = max_length - t.num_special
        sequences: list[list[int]] = []
        types: list[list[int]] = []
        for first, second in (
            ((1, room - 1), (1, 1), (1, min(2, room - 1)))
            if pair
            else ((room, 0), (1, 0), (min(2, room), 0))
        ):
            sequences.append([*t.prefix, *[top] * first, *t.middle, *[top] * second, *t.suffix])
            types.append(
                [
                    *t.prefix_types,
                    *[t.first_type] * first,
                    *t.middle_types,
                    *[t.second_type] * second,
                    *t.suffix_types,
                ]
            )
        flags = np.zeros(len(sequences), dtype=bool)
        return _pack(sequences, types, flags, flags)

    def encode_texts(self, texts: Sequence[str], *, max_length: int) -> TokenizedBatch:
        """Encode single texts, each cut to ``max_length`` tokens with its special tokens."""
        room = max_length - self._single.num_special
        if room < 1:
            raise ValueError(f"max_length={max_length} leaves no room for text")
        t = self._single
        bare = self._encode_capped(texts, room)
        sequences: list[list[int]] = []
        types: list[list[int]] = []
        truncated = np.zeros(len(texts), dtype=bool)
        for i, (ids, cut) in enumerate(bare):
            if cut or len(ids) > room:
                truncated[i] = True
                ids = ids[:room]
            sequences.append([*t.prefix, *ids, *t.suffix])
            types.append([*t.prefix_types, *([t.first_type] * len(ids)), *t.suffix_types])
        return _pack(sequences, types, truncated, np.zeros(len(texts), dtype=bool))

    def encode_pairs(
        self,
        queries: Sequence[str],
        passages: Sequence[str],
        *,
        query_max_tokens: int,
        max_length: int,
    ) -> TokenizedBatch:
        """Encode (query, passage) pairs.

        Each query is cut to ``query_max_tokens`` tokens; its passage gets the
        rest of ``max_length`` after the query and the special tokens, and is
        cut to that (``truncated``).
        """
        t = self._pair
        room = max_length - t.num_special
        if query_max_tokens < 1 or room - query_max_tokens < 1:
            raise ValueError(
                f"query_max_tokens={query_max_tokens} must be >= 1 and leave room for "
                f"the passage within max_length={max_length} ({t.num_special} special tokens)"
            )
        # Reranking sends one query with many passages: encode each distinct query once.
        distinct = {q: i for i, q in enumerate(dict.fromkeys(queries))}
        query_ids = self._encode_capped(list(distinct), query_max_tokens)
        passage_ids = self._encode_capped(passages, room)
        sequences: list[list[int]] = []
        types: list[list[int]] = []
        n = len(passages)
        truncated = np.zeros(n, dtype=bool)
        query_truncated = np.zeros(n, dtype=bool)
        for i, (query, (p, p_cut)) in enumerate(zip(queries, passage_ids, strict=True)):
            q, q_cut = query_ids[distinct[query]]
            if q_cut or len(q) > query_max_tokens:
                query_truncated[i] = True
                q = q[:query_max_tokens]
            budget = room - len(q)
            if p_cut or len(p) > budget:
                truncated[i] = True
                p = p[:budget]
            sequences.append([*t.prefix, *q, *t.middle, *p, *t.suffix])
            types.append(
                [
                    *t.prefix_types,
                    *([t.first_type] * len(q)),
                    *t.middle_types,
                    *([t.second_type] * len(p)),
                    *t.suffix_types,
                ]
            )
        return _pack(sequences, types, truncated, query_truncated)

    def _encode_capped(self, texts: Sequence[str], budget: int) -> list[tuple[list[int], bool]]:
        """Token ids of each text without special tokens, and whether the text was cut.

        The ids are exact in their first ``budget + 1`` tokens: either the
        text's complete tokenisation, or (for a very long text) the tokens of a
        prefix that holds more than ``budget`` tokens of complete words, so
        callers can cut to any budget up to ``budget`` and tell whether they
        cut. The flag is True only for a text so long and so short of word
        boundaries that neither prefix decides: it is tokenised from its first
        ``_CHARS_PER_TOKEN_HARD_CAP * budget`` characters.
        """
        soft_cap = max(_MIN_CHAR_CAP, budget * _CHARS_PER_TOKEN_CAP)
        hard_cap = max(_MIN_HARD_CHAR_CAP, budget * _CHARS_PER_TOKEN_HARD_CAP)
        clipped = [text if len(text) <= soft_cap else text[:soft_cap] for text in texts]
        with _panics_as_format_errors(self.path):
            encodings = self._tok.encode_batch(clipped, add_special_tokens=False)
        out: list[tuple[list[int], bool]] = []
        for text, clip, enc in zip(texts, clipped, encodings, strict=True):
            cut = False
            if clip is not text and not _prefix_decides(enc, budget):
                longer = text[:hard_cap]
                with _panics_as_format_errors(self.path):
                    enc = self._tok.encode(longer, add_special_tokens=False)
                cut = len(longer) < len(text) and not _prefix_decides(enc, budget)
            out.append((enc.ids, cut))
        return out


def _prefix_decides(enc: Encoding, budget: int) -> bool:
    """Whether a prefix's encoding has the full text's first ``budget + 1`` tokens.

    Cutting a text can only change the tokens of the word it cuts through (the
    normaliser works character by character; pre-tokenisers split at word
    boundaries), so the prefix is exact as far as tokens of earlier words
    reach. A tokenizer without word boundaries puts everything in one word:
    then this is False and the caller encodes the whole text.
    """
    words = enc.word_ids
    if len(words) <= budget + 1:
        return False
    last = words[-1]
    return last is not None and last not in words[: budget + 1]


def _pack(
    sequences: list[list[int]],
    types: list[list[int]],
    truncated: np.ndarray,
    query_truncated: np.ndarray,
) -> TokenizedBatch:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    ids = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=total)
    type_ids = np.fromiter(itertools.chain.from_iterable(types), dtype=np.int64, count=total)
    return TokenizedBatch(ids, type_ids, offsets, truncated, query_truncated)
