"""Weights kept outside model.onnx: ``external_initializers`` and the shared
4-bit word-embedding table (tools/share_embeddings.py).

The tiny models of tiny_models.py are rewritten by the tool and checked against
ONNX Runtime's Python API fed the same arrays, and against an fp32 graph whose
table is the dequantised one computed in numpy here; every way the files can
be wrong must fail with the file's name.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from tiny_models import random_text, write_model_dir

from secondopinion import CrossEncoder, Embedder
from secondopinion.model_dir import ModelFormatError

TOOL = Path(__file__).resolve().parent.parent / "tools" / "share_embeddings.py"
BLOCK = 16  # tiny models have 32 hidden units


def _tool():
    spec = importlib.util.spec_from_file_location("share_embeddings", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


share = _tool()


def word_table(model_dir: Path) -> np.ndarray:
    model = onnx.load(str(model_dir / "model.onnx"))
    ids_gather = next(
        n for n in model.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids"
    )
    init = next(t for t in model.graph.initializer if t.name == ids_gather.input[0])
    return numpy_helper.to_array(init)


def with_table(src: Path, dst: Path, table: np.ndarray) -> Path:
    """A copy of ``src`` whose fp32 word-embedding table is ``table``."""
    shutil.copytree(src, dst)
    model = onnx.load(str(dst / "model.onnx"))
    name = next(
        n.input[0] for n in model.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids"
    )
    for t in model.graph.initializer:
        if t.name == name:
            t.CopyFrom(numpy_helper.from_array(table.astype(np.float32), name))
    onnx.save(model, str(dst / "model.onnx"))
    return dst


@pytest.fixture(scope="module")
def shared_pair(tmp_path_factory) -> dict[str, Path]:
    """A tiny cross-encoder and embedder made from one table, then sharing it."""
    root = tmp_path_factory.mktemp("shared")
    ce = write_model_dir(root / "original" / "cross-encoder", kind="cross-encoder", seed=3)
    emb = write_model_dir(root / "original" / "embedder", kind="embedder", seed=3)
    table = word_table(ce)
    np.testing.assert_array_equal(table, word_table(emb))  # same seed, same table
    arrays = share.quantize_blocks(table, BLOCK)
    dequantized = share.dequantize_blocks(arrays, BLOCK)
    out = {"table": root / "table.npy", "shared": root / "pkg" / "shared"}
    np.save(out["table"], dequantized)
    out["shared"].mkdir(parents=True)
    for name, array in arrays.items():
        np.save(out["shared"] / share.npy_name(name), array)
    for kind, src in (("cross-encoder", ce), ("embedder", emb)):
        out[kind] = root / "pkg" / kind
        shutil.copytree(src, out[kind])
        share.rewrite_model(out[kind], arrays, BLOCK, out["shared"])
        out[kind + "-reference"] = with_table(src, root / "reference" / kind, dequantized)
    return out


def test_block_quantisation_round_trip_is_within_half_a_step():
    rng = np.random.default_rng(0)
    table = rng.normal(0, 0.05, size=(100, 64)).astype(np.float32)
    table[3] = 0.0  # an all-zero row: scale 1, every value exactly 0
    table[4, :16] = 0.7  # a constant block
    arrays = share.quantize_blocks(table, 16)
    assert arrays[share.DATA_NAME].shape == (100, 32) and arrays[share.DATA_NAME].dtype == np.uint8
    assert arrays[share.SCALES_NAME].shape == (100, 4)
    assert arrays[share.ZERO_POINTS_NAME].shape == (100, 2)
    back = share.dequantize_blocks(arrays, 16)
    step = np.repeat(arrays[share.SCALES_NAME], 16, axis=1)
    # half a step, plus what rounding the scale to float16 can add at the block ends
    assert np.all(np.abs(back - table) <= 0.51 * step)
    np.testing.assert_array_equal(back[3], 0.0)
    np.testing.assert_allclose(back[4, :16], 0.7, rtol=1e-3)
    # an odd number of blocks per row pads the packed zero points
    odd = share.quantize_blocks(table[:, :48], 16)
    assert odd[share.ZERO_POINTS_NAME].shape == (100, 2)
    assert np.all(np.abs(share.dequantize_blocks(odd, 16) - table[:, :48]) <= 0.51 * step[:, :48])
    with pytest.raises(ValueError, match="blocks of 24"):
        share.quantize_blocks(table, 24)


def test_onnxruntime_lookup_equals_numpy_dequantisation(shared_pair):
    """GatherBlockQuantized decodes the packed nibbles and zero points as numpy does."""
    config = json.loads((shared_pair["embedder"] / "secondopinion.json").read_text())
    names = list(config["external_initializers"])
    values = [
        ort.OrtValue.ortvalue_from_numpy(np.load(shared_pair["embedder"] / path))
        for path in config["external_initializers"].values()
    ]
    options = ort.SessionOptions()
    options.add_external_initializers(names, values)
    shared = ort.InferenceSession(
        str(shared_pair["embedder"] / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    reference = ort.InferenceSession(
        str(shared_pair["embedder-reference"] / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    ids = np.arange(2, 40, dtype=np.int64)[None, :]
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    np.testing.assert_allclose(shared.run(None, feed)[0], reference.run(None, feed)[0], atol=1e-5)
    # an id past the table fails as Gather does (GatherBlockQuantized alone
    # would return zeros): the runtime's load-time check depends on it
    rows = np.load(shared_pair["shared"] / "word_embeddings.int4.npy").shape[0]
    past = np.array([[2, rows]], dtype=np.int64)
    bad = {"input_ids": past, "attention_mask": np.ones_like(past), "token_type_ids": 0 * past}
    with pytest.raises(Exception, match="out of data bounds"):
        shared.run(None, bad)


def test_models_sharing_a_table_score_as_their_reference(shared_pair):
    rng = np.random.default_rng(1)
    texts = [random_text(rng, n) for n in (3, 17, 40)]
    emb = Embedder(shared_pair["embedder"])
    np.testing.assert_allclose(
        emb.encode(texts), Embedder(shared_pair["embedder-reference"]).encode(texts), atol=1e-5
    )
    pairs = [(texts[0], t) for t in texts]
    ce = CrossEncoder(shared_pair["cross-encoder"])
    np.testing.assert_allclose(
        ce.predict(pairs, activation="none"),
        CrossEncoder(shared_pair["cross-encoder-reference"]).predict(pairs, activation="none"),
        atol=1e-5,
    )
    # the table is stored once, outside both graphs
    for kind in ("cross-encoder", "embedder"):
        model = onnx.load(str(shared_pair[kind] / "model.onnx"), load_external_data=False)
        external = [t.name for t in model.graph.initializer if t.data_location == 1]
        assert sorted(external) == sorted(
            [share.DATA_NAME, share.SCALES_NAME, share.ZERO_POINTS_NAME]
        )


def _copy(shared_pair, tmp_path) -> Path:
    """A writable copy of the shared pair's embedder and shared folder."""
    shutil.copytree(shared_pair["embedder"], tmp_path / "embedder")
    shutil.copytree(shared_pair["shared"], tmp_path / "shared")
    return tmp_path / "embedder"


def _edit_config(model_dir: Path, **changes: object) -> None:
    path = model_dir / "secondopinion.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_unusable_external_path_names_the_key(shared_pair, tmp_path):
    """Found by fuzzing: a name too long for the file system raised OSError."""
    model_dir = _copy(shared_pair, tmp_path)
    _edit_config(model_dir, external_initializers={"x": "x" * 5000 + ".npy"})
    with pytest.raises(ModelFormatError, match="'external_initializers' path of 'x' is not usable"):
        Embedder(model_dir)


@pytest.mark.parametrize(
    "value",
    [
        ["shared.word_embeddings.int4"],
        {"shared.word_embeddings.int4": 3},
        {"x": ""},
        {"x": "/abs.npy"},
        {"x": "a\u0000b.npy"},
    ],
)
def test_bad_external_initializers_entry_names_the_key(shared_pair, tmp_path, value):
    model_dir = _copy(shared_pair, tmp_path)
    _edit_config(model_dir, external_initializers=value)
    with pytest.raises(ModelFormatError, match="external_initializers"):
        Embedder(model_dir)


def test_missing_shared_file_names_it(shared_pair, tmp_path):
    _copy(shared_pair, tmp_path)
    shutil.copytree(shared_pair["cross-encoder"], tmp_path / "cross-encoder")
    (tmp_path / "shared" / "word_embeddings.scales.npy").unlink()
    for cls, kind in ((Embedder, "embedder"), (CrossEncoder, "cross-encoder")):
        with pytest.raises(FileNotFoundError, match=r"word_embeddings\.scales\.npy: missing"):
            cls(tmp_path / kind)


def test_graph_without_the_external_initializers_fails_at_load(shared_pair, tmp_path):
    model_dir = _copy(shared_pair, tmp_path)
    _edit_config(model_dir, external_initializers={})
    with pytest.raises(ModelFormatError, match="not a loadable ONNX model"):
        Embedder(model_dir)


def _corrupt(path: Path, how: str) -> None:
    if how == "magic":
        path.write_bytes(b"PK\x03\x04" + path.read_bytes()[4:])
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    elif how == "extra":
        path.write_bytes(path.read_bytes() + b"\0")
    elif how == "header":
        path.write_bytes(path.read_bytes()[:9])
    elif how == "dtype":
        np.save(path, np.load(path).astype(np.int8))
    elif how == "shape":
        np.save(path, np.load(path)[:-1])
    elif how == "fortran":
        np.save(path, np.asfortranarray(np.load(path)))
    elif how == "big-endian":
        np.save(path, np.load(path).astype(">f4"))
    elif how == "object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    ("file", "how", "message"),
    [
        ("word_embeddings.int4.npy", "magic", "not a .npy file"),
        ("word_embeddings.int4.npy", "truncated", "bytes of data where its header says"),
        ("word_embeddings.int4.npy", "extra", "bytes of data where its header says"),
        ("word_embeddings.int4.npy", "header", "truncated header"),
        ("word_embeddings.int4.npy", "dtype", "not a loadable ONNX model"),
        ("word_embeddings.int4.npy", "shape", "not a loadable ONNX model"),
        ("word_embeddings.scales.npy", "fortran", "Fortran-ordered"),
        ("word_embeddings.scales.npy", "big-endian", "unsupported dtype"),
        ("word_embeddings.scales.npy", "object", "unsupported dtype"),
    ],
)
def test_corrupt_shared_file_is_refused_with_its_name(shared_pair, tmp_path, file, how, message):
    model_dir = _copy(shared_pair, tmp_path)
    _corrupt(tmp_path / "shared" / file, how)
    with pytest.raises(ModelFormatError, match=message) as info:
        Embedder(model_dir)
    assert file in str(info.value)
    if message != "not a loadable ONNX model":  # the reader's own errors say who named the file
        assert "secondopinion.json: external_initializers" in str(info.value)
