"""The C++ WordPiece tokenizer against Hugging Face ``tokenizers`` (the Python path's)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import build_tokenizer
from tokenizers import Tokenizer

from secondopinion import _core
from secondopinion.model_dir import default_model_dir
from secondopinion.tokenize import ModelTokenizer

SHIPPED = {
    kind: default_model_dir(kind) / "tokenizer.json" for kind in ("cross-encoder", "embedder")
}
CE_TOKENIZER = SHIPPED["cross-encoder"]
DEMO_CORPUS = Path(__file__).resolve().parent.parent / "python/secondopinion/data"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

EDGE_CASES = [
    "",
    " ",
    "   \t\n\r  ",
    "\u3000\u2003\u00a0",  # ideographic, em and no-break spaces
    "\x00\x01\x7f\u200b\u200d\ufeff\ufffd",  # controls, formats, replacement: all removed
    "a\x00b",  # a removed control joins nothing: "ab"
    "tab\tnew\nline\rcarriage\x0bvt\x0cff\x85nel",
    "中文字符 and 日本語 text",
    "한국어 텍스트",  # Hangul syllables decompose (strip_accents)
    "\uf900\ufa0e",  # CJK compatibility ideographs: decomposed and padded
    "naïve café résumé Ångström",
    "e\u0301 e\u0301\u0316 e\u0316\u0301",  # combining marks in both orders
    "x\u0898\u0301 \u0898 \u07fd",  # marks newer than tokenizers' category tables
    "İstanbul ΣΟΦΊΑ ǅ ß ﬁ Kelvin \u212a",
    "\u037e\u0387",  # compatibility punctuation that NFD turns into ';' and '·'
    "emoji 🥰🧑‍🤝‍🧑 and flags 🇫🇷",
    "hello[SEP]world [CLS][PAD] [MASK]x [UNK]",
    "[sep] [Sep] [SEP [SEP]]",
    "##ing ## #",
    "word" * 30,  # 120 characters: one [UNK]
    "a" * 100 + " " + "b" * 101,  # exactly at and over max_input_chars_per_word
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "don't stop-believing... (really?!) 3.14 $100 50% a@b.c",
    "\u0130\u0307",
    "\U0001d400\U0001d7ce",  # mathematical bold letters and digits
    "Ⅻ ① ²",
]


def hf_tokenizer(path: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


def hf_ids(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def hf() -> Tokenizer:
    return hf_tokenizer(CE_TOKENIZER)


@pytest.fixture(scope="module")
def wp():
    return _core.WordPieceTokenizer.from_file(str(CE_TOKENIZER))


def demo_texts() -> list[str]:
    texts = []
    for line in (DEMO_CORPUS / "demo_corpus.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        texts += [doc["title"], doc["text"], f"{doc['title']} {doc['text']}"]
    queries = json.loads((DEMO_CORPUS / "demo_queries.json").read_text(encoding="utf-8"))
    return texts + [q["query"] for q in queries]


def test_tables_come_from_the_installed_tokenizers():
    # The generated tables record the release they were read off; a newer
    # tokenizers may change Unicode behaviour (the tests below would show where).
    assert _core.wordpiece_tokenizers_version() == tokenizers.__version__


@pytest.mark.parametrize("kind", sorted(SHIPPED))
def test_shipped_tokenizers_load_with_their_metadata(kind):
    hf_tok = hf_tokenizer(SHIPPED[kind])
    wp = _core.WordPieceTokenizer.from_file(str(SHIPPED[kind]))
    model = ModelTokenizer(SHIPPED[kind])
    assert wp.vocab_size == hf_tok.get_vocab_size(with_added_tokens=False)
    assert wp.pad_id == model.pad_id
    assert wp.unk_id == hf_tok.token_to_id("[UNK]")
    assert wp.special_tokens_single == model.special_tokens_single
    assert wp.special_tokens_pair == model.special_tokens_pair
    for token in [*SPECIALS, "the", "##ing", "not-a-token"]:
        assert wp.token_to_id(token) == hf_tok.token_to_id(token)


@pytest.mark.parametrize("kind", sorted(SHIPPED))
def test_demo_corpus_ids_equal_tokenizers(kind):
    hf_tok = hf_tokenizer(SHIPPED[kind])
    wp = _core.WordPieceTokenizer.from_file(str(SHIPPED[kind]))
    for text in demo_texts():
        assert wp.encode(text).tolist() == hf_ids(hf_tok, text), text


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_equal_tokenizers(hf, wp, text):
    assert wp.encode(text).tolist() == hf_ids(hf, text)


def check_code_points(hf: Tokenizer, wp, code_points: list[int]) -> None:  # noqa: ANN001
    # Each code point c as " c " and as "a" c "b", 2,000 code points per call;
    # words are separated by spaces, so each is tokenised on its own.
    for start in range(0, len(code_points), 2000):
        chunk = code_points[start : start + 2000]
        text = " ".join(f"{chr(cp)} a{chr(cp)}b" for cp in chunk)
        got, want = wp.encode(text).tolist(), hf_ids(hf, text)
        if got != want:  # find the code point, for the message
            for cp in chunk:
                one = f"{chr(cp)} a{chr(cp)}b"
                assert wp.encode(one).tolist() == hf_ids(hf, one), f"U+{cp:04X}"
        assert got == want, f"chunk from U+{chunk[0]:04X}"


NOT_SURROGATE = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def test_code_points_alone_and_inside_a_word(hf, wp):
    # The whole Basic Multilingual Plane, and every 13th code point above it
    # (the rest: test_every_code_point, marked slow).
    check_code_points(hf, wp, [cp for cp in NOT_SURROGATE if cp < 0x10000 or cp % 13 == 0])


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SECONDOPINION_SLOW") != "1", reason="SECONDOPINION_SLOW=1")
def test_every_code_point(hf, wp):
    check_code_points(hf, wp, NOT_SURROGATE)


# Marks that strip_accents keeps (newer than tokenizers' category tables, or
# spacing), with different combining classes, and some it drops.
MARKS = "\u0301\u0316\u0334\u0345\u05b0\u0898\u07fd\u0f71\u0f72\u1dce\u302a\U0001d165\U0001d16d"


@pytest.fixture(scope="module")
def marks_pair(tmp_path_factory):
    """A vocabulary where every mark is a piece, so the order of kept marks shows in the ids."""

    def edit(raw: dict) -> None:
        vocab = raw["model"]["vocab"]
        for mark in MARKS:
            for piece in (mark, "##" + mark):
                vocab.setdefault(piece, len(vocab))

    path = variant(tmp_path_factory.mktemp("marks"), edit)
    return hf_tokenizer(path), _core.WordPieceTokenizer.from_file(str(path))


@given(st.lists(st.sampled_from(list(MARKS) + ["a", "e", "\u00e9", " ", "\u3400"]), max_size=12))
@settings(max_examples=300, deadline=None)
def test_canonical_reordering_of_marks(marks_pair, chars):
    # Runs of combining marks are sorted by combining class across characters.
    hf_tok, wp = marks_pair
    text = "".join(chars)
    assert wp.encode(text).tolist() == hf_ids(hf_tok, text)


def test_reordering_changes_ids(marks_pair):
    # The property above can fail: U+1D16D (class 226) before U+1D165 (216)
    # is reordered, and the pieces in the written order have other ids.
    hf_tok, _ = marks_pair
    written = [hf_tok.token_to_id(t) for t in ("a", "##\U0001d16d", "##\U0001d165")]
    assert hf_ids(hf_tok, "a\U0001d16d\U0001d165") == [written[0], written[2], written[1]]


unicode_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
mixed_text = st.lists(
    st.one_of(unicode_text, st.sampled_from([*SPECIALS, " ", "##", "e\u0301", "中", "\t"])),
    max_size=8,
).map("".join)


@given(mixed_text)
@settings(max_examples=400, deadline=None)
def test_random_unicode_equals_tokenizers(hf, wp, text):
    assert wp.encode(text).tolist() == hf_ids(hf, text)


@given(mixed_text, st.integers(0, 40))
@settings(max_examples=200, deadline=None)
def test_capped_encoding_is_a_prefix(hf, wp, text, cap):
    full = hf_ids(hf, text)
    ids, more = wp.encode_capped(text, cap)
    assert ids.tolist() == full[:cap]
    assert more == (len(full) > cap)


def test_capped_encoding_of_a_huge_text_stops_early(hf, wp):
    text = "lorem ipsum dolor sit amet " * 200_000  # 5.4 MB
    ids, more = wp.encode_capped(text, 64)
    assert more
    assert ids.tolist() == hf_ids(hf, text[:2000])[:64]


def reference_pairs(tok: Tokenizer, queries, passages, query_max_tokens, max_length):
    """Plain Python over tokenizers' ids: the Python path's truncation rule, written out."""
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    ids, types, offsets, cut, qcut = [], [], [0], [], []
    for query, passage in zip(queries, passages, strict=True):
        q, p = hf_ids(tok, query), hf_ids(tok, passage)
        qcut.append(len(q) > query_max_tokens)
        q = q[:query_max_tokens]
        budget = max_length - 3 - len(q)
        cut.append(len(p) > budget)
        p = p[:budget]
        ids += [cls, *q, sep, *p, sep]
        types += [0] * (len(q) + 2) + [1] * (len(p) + 1)
        offsets.append(len(ids))
    return ids, types, offsets, cut, qcut


@pytest.mark.parametrize("query_max_tokens, max_length", [(64, 256), (4, 16), (1, 5)])
def test_pairs_equal_the_python_path(hf, wp, query_max_tokens, max_length):
    texts = demo_texts() + EDGE_CASES
    queries = [texts[(7 * i) % len(texts)] for i in range(len(texts))]
    got = wp.encode_pairs(queries, texts, query_max_tokens, max_length)
    want = reference_pairs(hf, queries, texts, query_max_tokens, max_length)
    keys = ("ids", "type_ids", "offsets", "truncated", "query_truncated")
    for key, expected in zip(keys, want, strict=True):
        assert got[key].tolist() == list(expected), key
    python_path = ModelTokenizer(CE_TOKENIZER).encode_pairs(
        queries, texts, query_max_tokens=query_max_tokens, max_length=max_length
    )
    np.testing.assert_array_equal(got["ids"], python_path.ids)
    np.testing.assert_array_equal(got["type_ids"], python_path.type_ids)
    np.testing.assert_array_equal(got["offsets"], python_path.offsets)
    np.testing.assert_array_equal(got["truncated"], python_path.truncated)
    np.testing.assert_array_equal(got["query_truncated"], python_path.query_truncated)


def padded(batch: dict, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = batch["offsets"]
    lengths = np.diff(offsets)
    width = int(lengths.max())
    ids = np.full((len(lengths), width), pad_id, dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        ids[i, : b - a] = batch["ids"][a:b]
        types[i, : b - a] = batch["type_ids"][a:b]
        mask[i, : b - a] = 1
    return ids, types, mask


def test_untruncated_pairs_and_texts_equal_tokenizers_templates(wp):
    # Where nothing is cut, tokenizers' own post-processor and padding give
    # the same ids, type ids and attention masks.
    hf_tok = hf_tokenizer(CE_TOKENIZER)
    hf_tok.enable_padding(pad_id=wp.pad_id)
    texts = demo_texts()[:30] + EDGE_CASES
    queries = texts[::-1]
    pairs = hf_tok.encode_batch(list(zip(queries, texts, strict=True)))
    ours = padded(wp.encode_pairs(queries, texts, 512, 4096), wp.pad_id)
    for got, attr in zip(ours, ("ids", "type_ids", "attention_mask"), strict=True):
        np.testing.assert_array_equal(got, np.array([getattr(e, attr) for e in pairs]), attr)
    singles = hf_tok.encode_batch(texts)
    ours = padded(wp.encode_texts(texts, 4096), wp.pad_id)
    for got, attr in zip(ours, ("ids", "type_ids", "attention_mask"), strict=True):
        np.testing.assert_array_equal(got, np.array([getattr(e, attr) for e in singles]), attr)


def test_texts_are_cut_to_max_length(hf, wp):
    texts = demo_texts()[:10] + EDGE_CASES
    batch = wp.encode_texts(texts, 12)
    python_path = ModelTokenizer(CE_TOKENIZER).encode_texts(texts, max_length=12)
    np.testing.assert_array_equal(batch["ids"], python_path.ids)
    np.testing.assert_array_equal(batch["offsets"], python_path.offsets)
    np.testing.assert_array_equal(batch["truncated"], python_path.truncated)


# --- other tokenizer.json files: options, templates, vocabularies -------------


def variant(tmp_path: Path, edit) -> Path:  # noqa: ANN001 - a callable on the JSON
    raw = json.loads(CE_TOKENIZER.read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


OPTION_TEXTS = EDGE_CASES + ["Héllo WÖRLD\u00a0中文 x\u0898\u0301 ΣΟΦΊΑ \x01\t"]


@pytest.mark.parametrize("clean_text", [True, False])
@pytest.mark.parametrize("handle_chinese_chars", [True, False])
@pytest.mark.parametrize("strip_accents", [None, True, False])
@pytest.mark.parametrize("lowercase", [True, False])
def test_normalizer_options(tmp_path, clean_text, handle_chinese_chars, strip_accents, lowercase):
    def edit(raw: dict) -> None:
        raw["normalizer"].update(
            clean_text=clean_text,
            handle_chinese_chars=handle_chinese_chars,
            strip_accents=strip_accents,
            lowercase=lowercase,
        )

    path = variant(tmp_path, edit)
    hf_tok, wp = hf_tokenizer(path), _core.WordPieceTokenizer.from_file(str(path))
    for text in OPTION_TEXTS:
        assert wp.encode(text).tolist() == hf_ids(hf_tok, text), text


def test_no_normalizer(tmp_path):
    def edit(raw: dict) -> None:
        raw["normalizer"] = None

    path = variant(tmp_path, edit)
    hf_tok, wp = hf_tokenizer(path), _core.WordPieceTokenizer.from_file(str(path))
    for text in OPTION_TEXTS:
        assert wp.encode(text).tolist() == hf_ids(hf_tok, text), text


@pytest.mark.parametrize("limit", [0, 1, 5])
def test_max_input_chars_per_word(tmp_path, limit):
    def edit(raw: dict) -> None:
        raw["model"]["max_input_chars_per_word"] = limit

    path = variant(tmp_path, edit)
    hf_tok, wp = hf_tokenizer(path), _core.WordPieceTokenizer.from_file(str(path))
    for text in ["a ab abcde abcdef", "résumé", *EDGE_CASES]:
        assert wp.encode(text).tolist() == hf_ids(hf_tok, text), text


def test_bert_processing_template(tmp_path):
    def edit(raw: dict) -> None:
        raw["post_processor"] = {
            "type": "BertProcessing",
            "sep": ["[SEP]", 102],
            "cls": ["[CLS]", 101],
        }

    path = variant(tmp_path, edit)
    hf_tok, wp = hf_tokenizer(path), _core.WordPieceTokenizer.from_file(str(path))
    enc = hf_tok.encode("a question", "an answer")
    got = wp.encode_pairs(["a question"], ["an answer"], 10, 64)
    assert got["ids"].tolist() == enc.ids
    assert got["type_ids"].tolist() == enc.type_ids


def test_tiny_vocabulary_with_many_unknown_words(tmp_path):
    path = tmp_path / "tiny.json"
    build_tokenizer().save(str(path))
    hf_tok, wp = hf_tokenizer(path), _core.WordPieceTokenizer.from_file(str(path))
    assert wp.pad_id == ModelTokenizer(path).pad_id  # from the file's padding section
    for text in [*EDGE_CASES, *demo_texts()[:20]]:
        assert wp.encode(text).tolist() == hf_ids(hf_tok, text), text


@given(mixed_text)
@settings(max_examples=150, deadline=None)
def test_tiny_vocabulary_random_text(tiny_pair, text):
    hf_tok, wp = tiny_pair
    assert wp.encode(text).tolist() == hf_ids(hf_tok, text)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tokenizer.json"
    build_tokenizer().save(str(path))
    return hf_tokenizer(path), _core.WordPieceTokenizer.from_file(str(path))


# --- refusals --------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ValueError, match="nope.json: cannot open"):
        _core.WordPieceTokenizer.from_file(str(tmp_path / "nope.json"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "unexpected end of input"),
        ("{", "expected a string key"),
        ('{"a": 1,}', "expected a string key"),
        ('{"a": 01}', "leading zero"),
        ('{"a": NaN}', "unexpected character"),
        ('{"a": "\\ud800"}', "lone high surrogate"),
        ('{"a": 1, "a": 2}', 'duplicate key "a"'),
        ('{"a": 1} x', "unexpected data after"),
        ("[" * 200 + "]" * 200, "nesting deeper"),
        ('{"a": "\x01"}', "control character"),
        ("[]", "must hold a JSON object"),
    ],
)
def test_invalid_json_is_refused_with_where(text, message):
    with pytest.raises(ValueError, match=message) as info:
        _core.WordPieceTokenizer.from_json(text, "bad.json")
    assert str(info.value).startswith("bad.json: ")


def test_ill_formed_utf8_in_the_file_is_refused(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ValueError, match="ill-formed UTF-8 in a string at line 1, column 8"):
        _core.WordPieceTokenizer.from_file(str(path))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["model"].update(type="BPE"), 'model.type must be "WordPiece"'),
        (lambda r: r.update(normalizer={"type": "NFC"}), 'normalizer type "NFC" is not supported'),
        (lambda r: r.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer type"),
        (lambda r: r.update(pre_tokenizer=None), "pre_tokenizer is missing"),
        (lambda r: r.update(post_processor=None), "post_processor is missing"),
        (lambda r: r["model"].update(unk_token="[NOPE]"), '"\\[NOPE\\]" is not in model.vocab'),
        (lambda r: r["model"].update(vocab={}), "model.vocab is empty"),
        (lambda r: r["model"]["vocab"].update(the=-1), r'model.vocab\["the"\] must be an integer'),
        (lambda r: r["normalizer"].update(lowercase="yes"), "normalizer.lowercase must be true"),
        (lambda r: r["added_tokens"][0].update(lstrip=True), r"added_tokens\[0\].*sets lstrip"),
        (lambda r: r["added_tokens"][1].update(normalized=True), "sets normalized"),
        (lambda r: r["post_processor"]["pair"].pop(1), "must hold sequence A then B"),
        (lambda r: r["post_processor"]["special_tokens"].pop("[SEP]"), 'no entry for "\\[SEP\\]"'),
        (lambda r: r.pop("model"), 'the file has no "model"'),
    ],
)
def test_unsupported_or_corrupt_tokenizer_is_refused(tmp_path, edit, message):
    path = variant(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as info:
        _core.WordPieceTokenizer.from_file(str(path))
    assert str(info.value).startswith(str(path))


def test_pair_limits_are_checked(wp):
    with pytest.raises(ValueError, match="query_max_tokens=0 must be >= 1"):
        wp.encode_pairs(["q"], ["p"], 0, 16)
    with pytest.raises(ValueError, match="query_max_tokens=13 .* max_length=16"):
        wp.encode_pairs(["q"], ["p"], 13, 16)
    with pytest.raises(ValueError, match="differ in length"):
        wp.encode_pairs(["q"], [], 4, 16)
    with pytest.raises(ValueError, match="max_length=2 leaves no room"):
        wp.encode_texts(["t"], 2)
