"""Generate cpp/src/wordpiece_tables.cpp: the code point tables of the C++ BERT tokenizer.

The C++ tokenizer (cpp/src/wordpiece*.cpp) must give the token ids that the
Hugging Face ``tokenizers`` package gives, because the Python path and the
shipped models use that package. Its BertNormalizer and BertPreTokenizer do
not follow one Unicode version: general categories (which characters are
control, punctuation, non-spacing marks) come from the ``unicode_categories``
Rust crate, several Unicode versions old; NFD from ``unicode-normalization``;
lower-casing and whitespace from Rust's standard library, which is newer than
Python's ``unicodedata``. Tables built from ``unicodedata`` disagree with
``tokenizers`` on about 1,500 code points (new marks it does not strip,
new punctuation it does not split on, new lower-case pairs).

So the tables are read off ``tokenizers`` itself, one step and one code point
at a time, and checked at the end by recomposing the whole normaliser from
them for every code point. Run with the ``tokenizers`` version the Python path
uses (recorded in the output)::

    python tools/gen_wordpiece_tables.py > cpp/src/wordpiece_tables.cpp
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable

import tokenizers
from tokenizers import normalizers
from tokenizers.pre_tokenizers import BertPreTokenizer

MAX_CODE_POINT = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # decomposed arithmetically in C++
Write = Callable[[str], object]


def code_points() -> list[int]:
    return [cp for cp in range(MAX_CODE_POINT + 1) if cp not in SURROGATES]


def bert(**options: bool | None) -> normalizers.BertNormalizer:
    settings: dict[str, bool | None] = {
        "clean_text": False,
        "handle_chinese_chars": False,
        "strip_accents": False,
        "lowercase": False,
    }
    settings.update(options)
    return normalizers.BertNormalizer(**settings)


def ranges(cps: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for cp in sorted(cps):
        if out and out[-1][1] + 1 == cp:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


class Tables:
    def __init__(self) -> None:
        cps = code_points()
        clean = bert(clean_text=True)
        chinese = bert(handle_chinese_chars=True)
        strip = bert(strip_accents=True)
        nfd = normalizers.NFD()
        lower = normalizers.Lowercase()
        pre = BertPreTokenizer()

        self.clean_drop: list[int] = []
        self.clean_space: list[int] = []
        self.chinese: list[int] = []
        self.decompose: dict[int, str] = {}
        self.lower: dict[int, str] = {}
        self.whitespace: list[int] = []
        self.punct: list[int] = []
        for cp in cps:
            c = chr(cp)
            cleaned = clean.normalize_str(c)
            if cleaned == "":
                self.clean_drop.append(cp)
            elif cleaned == " " and c != " ":
                self.clean_space.append(cp)
            else:
                assert cleaned == c, hex(cp)
            padded = chinese.normalize_str(c)
            if padded != c:
                assert padded == f" {c} ", hex(cp)
                self.chinese.append(cp)
            decomposed = nfd.normalize_str(c)
            if decomposed != c and not HANGUL_FIRST <= cp <= HANGUL_LAST:
                self.decompose[cp] = decomposed
            low = lower.normalize_str(c)
            if low != c:
                self.lower[cp] = low
            words = [w for w, _ in pre.pre_tokenize_str(f"a{c}b")]
            if words == ["a", "b"]:
                self.whitespace.append(cp)
            elif words == ["a", c, "b"]:
                self.punct.append(cp)
            else:
                assert words == [f"a{c}b"], (hex(cp), words)
        self._check_hangul(nfd)
        # Characters NFD leaves alone: is each one a mark that strip_accents drops?
        atoms = [cp for cp in cps if cp not in self.decompose and not self._hangul(cp)]
        self.stripped = [cp for cp in atoms if strip.normalize_str(chr(cp)) == ""]
        stripped = set(self.stripped)
        self.ccc = self._combining_classes(nfd, [cp for cp in atoms if cp not in stripped])
        self._check_invariants()
        self._check_composition(cps)

    @staticmethod
    def _hangul(cp: int) -> bool:
        return HANGUL_FIRST <= cp <= HANGUL_LAST

    @staticmethod
    def _check_hangul(nfd: normalizers.NFD) -> None:
        for cp in range(HANGUL_FIRST, HANGUL_LAST + 1):
            assert nfd.normalize_str(chr(cp)) == hangul_nfd(cp), hex(cp)

    @staticmethod
    def _combining_classes(nfd: normalizers.NFD, survivors: list[int]) -> dict[int, int]:
        """Canonical combining class of every character strip_accents keeps, as tokenizers orders.

        NFD sorts each run of characters with a non-zero class by class,
        stably; marks that strip_accents then drops do not change the order of
        the rest, so only the survivors' classes matter. A class is read off
        the reordering of the character next to reference marks of known class.
        """
        candidates: dict[int, int] = {}  # class -> lowest code point of that class
        for cp in code_points():
            k = unicodedata.combining(chr(cp))
            if k and k not in candidates and unicodedata.normalize("NFD", chr(cp)) == chr(cp):
                candidates[k] = cp

        def swaps(first: str, second: str) -> bool:
            if first == second:
                return False
            out = nfd.normalize_str(first + second)
            if out == second + first:
                return True
            assert out == first + second, (first, second, out)
            return False

        # Reference marks: those whose class in tokenizers is the one
        # unicodedata gives (the two follow different Unicode versions, so a
        # class new to unicodedata may be unknown to tokenizers).
        refs: dict[int, int] = {}
        for k in sorted(candidates):
            r = chr(candidates[k])
            if all(
                swaps(r, chr(cp)) == (k > j) and swaps(chr(cp), r) == (j > k)
                for j, cp in refs.items()
            ):
                refs[k] = candidates[k]
        classes = sorted(refs)
        assert classes[0] == 1 and 230 in classes, classes
        lowest, highest = chr(refs[classes[0]]), chr(refs[classes[-1]])

        out: dict[int, int] = {}
        for cp in survivors:
            c = chr(cp)
            if not (swaps(c, lowest) or swaps(highest, c)):
                continue  # class 0
            # swaps(c, ref of class k) <=> class(c) > k
            above = [k for k in classes if swaps(c, chr(refs[k]))]
            k = classes[len(above)] if len(above) < len(classes) else classes[-1] + 1
            assert above == classes[: len(above)], hex(cp)
            out[cp] = k
        # Every pair of classed characters must reorder as their classes say.
        marks = sorted(out)
        for a in marks:
            for b in marks:
                if a != b:
                    assert swaps(chr(a), chr(b)) == (out[a] > out[b]), (hex(a), hex(b))
        return out

    def _check_invariants(self) -> None:
        """What lets the C++ tokenizer split words before lower-casing and reordering."""
        boundary = set(self.whitespace) | set(self.punct)
        for cp in boundary:
            assert cp not in self.ccc, hex(cp)  # a boundary never moves in NFD
            low = self.lower.get(cp, chr(cp))
            assert low == chr(cp), hex(cp)  # lower-casing keeps a boundary what it is
        for cp, low in self.lower.items():
            if cp not in boundary:
                assert not any(ord(c) in boundary for c in low), hex(cp)
        for cp in self.ccc:
            assert cp not in self.lower, hex(cp)  # reordered characters have no case
        assert max(len(v) for v in self.decompose.values()) <= 4
        # The C++ fast paths skip the tables below these code points.
        assert min(self.decompose) >= 0xC0 and min(self.stripped) >= 0xC0
        assert min(self.ccc) >= 0x300 and min(self.chinese) >= 0x3400
        assert all(cp >= 0x80 for cp in self.lower if not 0x41 <= cp <= 0x5A)
        assert max(len(v) for v in self.lower.values()) <= 3

    def normalize_char(self, cp: int) -> str:
        """BertNormalizer with every option on, for one character, from the tables."""
        if cp in self._drop:
            return ""
        if cp in self._space:
            return " "
        c = chr(cp)
        if cp in self._chinese:
            return " " + "".join(self.lower.get(ord(x), x) for x in self._strip(c)) + " "
        return "".join(self.lower.get(ord(x), x) for x in self._strip(c))

    def _strip(self, c: str) -> str:
        cp = ord(c)
        parts = hangul_nfd(cp) if self._hangul(cp) else self.decompose.get(cp, c)
        return "".join(x for x in parts if ord(x) not in self._stripped)

    def _check_composition(self, cps: list[int]) -> None:
        self._drop, self._space = set(self.clean_drop), set(self.clean_space)
        self._chinese, self._stripped = set(self.chinese), set(self.stripped)
        full = bert(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
        for cp in cps:
            assert full.normalize_str(chr(cp)) == self.normalize_char(cp), hex(cp)


def hangul_nfd(cp: int) -> str:
    s_index = cp - HANGUL_FIRST
    lead = 0x1100 + s_index // 588
    vowel = 0x1161 + (s_index % 588) // 28
    trail = s_index % 28
    return chr(lead) + chr(vowel) + (chr(0x11A7 + trail) if trail else "")


def write_ranges(w: Write, name: str, cps: list[int], why: str) -> None:
    rs = ranges(cps)
    w(f"// {why}\n")
    w(f"const CodeRange {name}[] = {{\n")
    for a, b in rs:
        w(f"    {{0x{a:X}, 0x{b:X}}},\n")
    w("};\n")
    w(f"const std::size_t {name}Count = {len(rs)};\n\n")


def write_mapping(w: Write, name: str, mapping: dict[int, str], why: str) -> None:
    w(f"// {why}\n")
    w(f"const Mapping {name}[] = {{\n")
    for cp in sorted(mapping):
        targets = [ord(c) for c in mapping[cp]]
        padded = targets + [0] * (4 - len(targets))
        body = ", ".join(f"0x{t:X}" for t in padded)
        w(f"    {{0x{cp:X}, {len(targets)}, {{{body}}}}},\n")
    w("};\n")
    w(f"const std::size_t {name}Count = {len(mapping)};\n\n")


def main() -> None:
    t = Tables()
    w = sys.stdout.write
    w("// Generated by tools/gen_wordpiece_tables.py; do not edit by hand.\n")
    w(f"// Read off Hugging Face tokenizers {tokenizers.__version__}, one code point at a time.\n")
    w('#include "wordpiece_tables.hpp"\n\n')
    w("namespace secondopinion::wordpiece_tables {\n\n")
    w(f'const char* const kTokenizersVersion = "{tokenizers.__version__}";\n\n')
    write_ranges(w, "kCleanDrop", t.clean_drop, "clean_text removes these (controls, formats).")
    write_ranges(w, "kCleanSpace", t.clean_space, "clean_text turns these into U+0020.")
    write_ranges(w, "kChinese", t.chinese, "handle_chinese_chars puts spaces around these.")
    write_ranges(w, "kStripped", t.stripped, "strip_accents drops these after NFD.")
    write_ranges(w, "kWhitespace", t.whitespace, "BertPreTokenizer splits on these, dropping them.")
    write_ranges(w, "kPunctuation", t.punct, "BertPreTokenizer makes each of these a word.")
    write_mapping(w, "kDecomposition", t.decompose, "Full canonical decomposition (Hangul apart).")
    write_mapping(w, "kLowercase", t.lower, "Full lower-case mapping (Rust's char::to_lowercase).")
    w("// Canonical combining class of the characters strip_accents keeps.\n")
    w("const CombiningClass kCombiningClass[] = {\n")
    for cp in sorted(t.ccc):
        w(f"    {{0x{cp:X}, {t.ccc[cp]}}},\n")
    w("};\n")
    w(f"const std::size_t kCombiningClassCount = {len(t.ccc)};\n\n")
    w("}  // namespace secondopinion::wordpiece_tables\n")


if __name__ == "__main__":
    main()
