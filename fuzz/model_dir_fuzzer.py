"""atheris target: opening and using a model directory whose ``secondopinion.json``
and ``tokenizer.json`` are corrupted.

Each input is decoded (atheris' FuzzedDataProvider) into: which shipped model
to start from (cross-encoder or embedder), which file(s) to corrupt, and how:

* structured: parse the JSON, walk to a random key or item, and replace it
  with a hostile value (wrong type, huge or non-finite number, very long or
  deeply nested value, an integer with more digits than Python parses), delete
  it, or add one;
* raw: edit, insert, delete or truncate bytes of the file's text;
* replace: the whole file becomes the fuzzer's bytes.

The result is written to a scratch directory beside a link to the shipped
``model.onnx`` and loaded with :class:`CrossEncoder` / :class:`Embedder`,
which then score or embed a few texts (a loaded model must work) and, for a
cross-encoder, build the relevance model its config asks for, as
:class:`Pipeline` does. Allowed outcomes: success, or ModelFormatError /
FileNotFoundError / ValueError naming the directory's file or an argument.

Run: python fuzz/model_dir_fuzzer.py [libFuzzer flags] [corpus dir]
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import check_error, main  # noqa: E402

with atheris.instrument_imports(include=["secondopinion"]):
    from secondopinion import _core
    from secondopinion import model_dir as md
    from secondopinion.embed import Embedder
    from secondopinion.gate import relevance_model_for
    from secondopinion.rerank import CrossEncoder

# Creating an ONNX Runtime session takes about 0.4 s, and model.onnx is the one
# file this target does not corrupt: sessions are made once per set of
# arguments and reused (they may be shared; see CrossEncoder's docstring).
_SESSIONS: dict[tuple[object, ...], object] = {}


def _cached(factory: Any) -> Any:  # noqa: ANN401 - a _core session class
    def make(*args: object, **kwargs: object) -> object:
        # lists (external_initializers) as tuples, so that the key hashes
        frozen = {k: tuple(map(tuple, v)) if isinstance(v, list) else v for k, v in kwargs.items()}
        key = (factory.__name__, args, tuple(sorted(frozen.items())))
        if key not in _SESSIONS:
            if len(_SESSIONS) >= 16:
                _SESSIONS.clear()
            _SESSIONS[key] = factory(*args, **kwargs)
        return _SESSIONS[key]

    return make


_core.CrossEncoderSession = _cached(_core.CrossEncoderSession)
_core.EmbedderSession = _cached(_core.EmbedderSession)

KINDS = (md.CROSS_ENCODER, md.EMBEDDER)
FILES = (md.CONFIG_FILE, md.TOKENIZER_FILE)
ORIGINAL = {
    (kind, name): (md.DEFAULT_MODELS_DIR / kind / name).read_text(encoding="utf-8")
    for kind in KINDS
    for name in FILES
}
PARSED = {key: json.loads(text) for key, text in ORIGINAL.items()}
# Under $SO_FUZZ_SCRATCH when set (make fuzz cleans it): libFuzzer ends the
# process without running Python's clean-up.
SCRATCH = Path(tempfile.mkdtemp(prefix="so_fuzz_model_", dir=os.environ.get("SO_FUZZ_SCRATCH")))
(SCRATCH / "shared").symlink_to(md.DEFAULT_MODELS_DIR / "shared")  # the models' ../shared
for kind in KINDS:
    (SCRATCH / kind).mkdir()
    (SCRATCH / kind / md.MODEL_FILE).symlink_to(md.DEFAULT_MODELS_DIR / kind / md.MODEL_FILE)

# Raw JSON text spliced in after json.dumps: values Python would refuse to
# serialise, or that parse into something other than what they look like.
RAW_MARK = "\u0000raw\u0000"


def hostile_value(fdp: atheris.FuzzedDataProvider, raw: list[str]) -> Any:  # noqa: ANN401
    choice = fdp.ConsumeIntInRange(0, 15)
    if choice == 0:
        return None
    if choice == 1:
        return fdp.ConsumeBool()
    if choice == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 16))
    if choice == 3:
        return fdp.ConsumeRegularFloat()
    if choice == 4:
        return fdp.PickValueInList([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324])
    if choice == 5:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    if choice == 6:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16))  # may hold lone surrogates
    if choice == 7:
        return []
    if choice == 8:
        return {}
    if choice == 9:
        return [hostile_value(fdp, raw) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if choice == 10:
        keys = [fdp.ConsumeUnicodeNoSurrogates(8) for _ in range(fdp.ConsumeIntInRange(0, 3))]
        return {k: hostile_value(fdp, raw) for k in keys}
    if choice == 11:
        return "x" * fdp.PickValueInList([1000, 100_000, 1_000_000])
    # Spliced raw text: deep nesting, integers past Python's digit limit, ...
    depth = fdp.PickValueInList([10, 1000, 100_000])
    text = fdp.PickValueInList(
        [
            "[" * depth + "]" * depth,
            '{"a":' * depth + "1" + "}" * depth,
            "9" * fdp.PickValueInList([20, 400, 5000]),
            "-" + "9" * 30,
            "1e999999",
        ]
    )
    raw.append(text)
    return f"{RAW_MARK}{len(raw) - 1}{RAW_MARK}"


def mutate_structured(fdp: atheris.FuzzedDataProvider, doc: Any) -> str:  # noqa: ANN401
    raw: list[str] = []
    root = copy.copy(doc)
    node = root
    # Walk down, copying each container on the way (the originals are shared).
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]
        child = node[key]
        if not isinstance(child, (dict, list)) or not fdp.ConsumeBool():
            break
        node[key] = copy.copy(child)
        node = node[key]
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    action = fdp.ConsumeIntInRange(0, 2)
    if keys and action == 0:
        del node[keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]]
    elif keys and action == 1:
        node[keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]] = hostile_value(fdp, raw)
    elif isinstance(node, dict):
        node[fdp.ConsumeUnicodeNoSurrogates(12)] = hostile_value(fdp, raw)
    else:
        node.insert(fdp.ConsumeIntInRange(0, len(node)), hostile_value(fdp, raw))
    text = json.dumps(root)
    for i, piece in enumerate(raw):
        text = text.replace(json.dumps(f"{RAW_MARK}{i}{RAW_MARK}"), piece)
    return text


def mutate_raw(fdp: atheris.FuzzedDataProvider, text: str) -> bytes:
    data = bytearray(text.encode("utf-8"))
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        pos = fdp.ConsumeIntInRange(0, len(data))
        op = fdp.ConsumeIntInRange(0, 3)
        if op == 0 and pos < len(data):
            data[pos] = fdp.ConsumeInt(1) & 0xFF
        elif op == 1:
            data[pos:pos] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
        elif op == 2:
            del data[pos : pos + fdp.ConsumeIntInRange(1, 64)]
        else:
            del data[pos:]
    return bytes(data)


def corrupt(fdp: atheris.FuzzedDataProvider, kind: str, name: str) -> bytes:
    mode = fdp.ConsumeIntInRange(0, 4)
    if mode <= 2:
        return mutate_structured(fdp, PARSED[(kind, name)]).encode("utf-8", "surrogatepass")
    if mode == 3:
        return mutate_raw(fdp, ORIGINAL[(kind, name)])
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))


def use(kind: str, folder: Path) -> None:
    if kind == md.CROSS_ENCODER:
        model = CrossEncoder(folder, threads=1)
        model.predict([("what is bm25", "a ranking function"), ("", "")])
        model.rank("q", ["x " * 600, "é"], top_k=1)
        relevance_model_for(model)
    else:
        embedder = Embedder(folder, threads=1)
        embedder.encode(["a passage", "", "x " * 600])


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind = KINDS[fdp.ConsumeIntInRange(0, 1)]
    which = fdp.ConsumeIntInRange(0, 2)  # the config, the tokenizer, or both
    folder = SCRATCH / kind
    for i, name in enumerate(FILES):
        if which in (i, 2):
            content = corrupt(fdp, kind, name)
        else:
            content = ORIGINAL[(kind, name)].encode("utf-8")
        (folder / name).write_bytes(content)
    try:
        use(kind, folder)
    except (md.ModelFormatError, FileNotFoundError, ValueError) as exc:
        check_error(
            exc,
            (md.ModelFormatError, FileNotFoundError, ValueError),
            [str(folder), "max_length", "query_max_tokens"],
        )


if __name__ == "__main__":
    main(test_one_input)
