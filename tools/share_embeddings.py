"""Give several int8 model directories one shared 4-bit word-embedding table.

    python tools/share_embeddings.py --table BASE_CHECKPOINT --shared DIR \\
        MODEL_DIR [MODEL_DIR ...] [--block-size 32] [--inline]

A MiniLM encoder's word-embedding table (30,522 x 384) is most of its bytes:
11.7 MB of a 20 MB int8 cross-encoder. The cross-encoder and the embedder
start from the same all-MiniLM-L6-v2 weights, and fine-tuning moved the
cross-encoder's table by 0.02 % (relative Frobenius norm), two hundred times
less than int8 rounding does (4.3 %). So both models can read one table, the
base checkpoint's, stored once.

The table is stored as 4-bit integers in blocks of ``--block-size`` values
along the hidden axis, each block with its own float16 scale and 4-bit zero
point (asymmetric min-max), and looked up by ONNX Runtime's ``GatherBlockQuantized``
(com.microsoft), which dequantises only the rows a batch reads. In every model
directory the word-embedding ``Gather`` + ``DequantizeLinear`` pair becomes that
one node.

Without ``--inline`` the three tensors are written once, as ``.npy`` files in
``--shared``; each model keeps them as external-data initializers and its
``secondopinion.json`` gains ``"external_initializers"``: tensor name -> path of
its ``.npy`` relative to the model directory. The runtime hands those arrays to
ONNX Runtime (``AddExternalInitializers``) when it opens the session, so a plain
``onnxruntime.InferenceSession`` cannot open such a model.onnx alone. With
``--inline`` each model carries its own copy (for measuring the quantisation
alone).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

MODEL_FILE = "model.onnx"
CONFIG_FILE = "secondopinion.json"
#: Names of the shared tensors, the same in every model that reads them.
DATA_NAME = "shared.word_embeddings.int4"
SCALES_NAME = "shared.word_embeddings.scales"
ZERO_POINTS_NAME = "shared.word_embeddings.zero_points"
GUARD_NAME = "word_embeddings.vocabulary_guard"
BITS = 4


def npy_name(tensor: str) -> str:
    """The shared file holding ``tensor``: ``word_embeddings.int4.npy`` and so on."""
    return tensor.removeprefix("shared.") + ".npy"


def quantize_blocks(table: np.ndarray, block_size: int) -> dict[str, np.ndarray]:
    """``table`` (rows x hidden, float) as packed uint4 blocks along the hidden axis.

    Returns the packed data (rows x hidden/2, two values per byte, low nibble
    first), float16 scales (rows x hidden/block) and packed uint4 zero points.
    The scales are rounded to float16 before the values are quantised with them,
    so the stored scale is the one the values were rounded against.
    """
    if table.ndim != 2 or table.shape[1] % block_size or block_size % 2:
        raise ValueError(f"table shape {table.shape} does not split into blocks of {block_size}")
    rows, hidden = table.shape
    blocks = table.astype(np.float64).reshape(rows, hidden // block_size, block_size)
    lo = np.minimum(blocks.min(-1), 0.0)  # zero must be representable exactly
    hi = np.maximum(blocks.max(-1), 0.0)
    scale = (hi - lo) / 15.0
    scale[scale == 0] = 1.0
    scale = scale.astype(np.float16).astype(np.float64)
    zero = np.clip(np.round(-lo / scale), 0, 15)
    q = np.clip(np.round(blocks / scale[..., None]) + zero[..., None], 0, 15).astype(np.uint8)
    q = q.reshape(rows, hidden)
    zero = zero.astype(np.uint8)
    if zero.shape[1] % 2:
        zero = np.pad(zero, ((0, 0), (0, 1)), constant_values=8)
    return {
        DATA_NAME: q[:, 0::2] | (q[:, 1::2] << 4),
        SCALES_NAME: scale.astype(np.float16),
        ZERO_POINTS_NAME: zero[:, 0::2] | (zero[:, 1::2] << 4),
    }


def dequantize_blocks(arrays: dict[str, np.ndarray], block_size: int) -> np.ndarray:
    """The float32 table ``quantize_blocks`` encoded (the reference for tests)."""
    packed, scales = arrays[DATA_NAME], arrays[SCALES_NAME].astype(np.float32)
    q = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.float32)
    q[:, 0::2], q[:, 1::2] = packed & 15, packed >> 4
    zp = np.empty((packed.shape[0], arrays[ZERO_POINTS_NAME].shape[1] * 2), dtype=np.float32)
    zp[:, 0::2], zp[:, 1::2] = arrays[ZERO_POINTS_NAME] & 15, arrays[ZERO_POINTS_NAME] >> 4
    zp = zp[:, : scales.shape[1]]
    blocks = q.reshape(q.shape[0], -1, block_size) - zp[..., None]
    return (blocks * scales[..., None]).reshape(q.shape).astype(np.float32)


def base_table(checkpoint: Path) -> np.ndarray:
    """The word-embedding table of a Hugging Face BERT checkpoint (safetensors)."""
    from safetensors.numpy import load_file

    weights = load_file(str(checkpoint / "model.safetensors"))
    names = [k for k in weights if k.endswith("word_embeddings.weight")]
    if len(names) != 1:
        raise ValueError(f"{checkpoint}: expected one word_embeddings.weight, found {names}")
    return weights[names[0]].astype(np.float32)


def rewrite_model(
    model_dir: Path,
    arrays: dict[str, np.ndarray],
    block_size: int,
    shared: Path | None,
) -> None:
    """Swap ``model_dir``'s word-embedding lookup for the shared 4-bit one, in place."""
    import onnx
    from onnx import helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    path = model_dir / MODEL_FILE
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    if any(n.name == "shared_word_embeddings" for n in graph.node):
        raise ValueError(f"{path}: already reads a shared word-embedding table")
    inits = {t.name: t for t in graph.initializer}
    # The word-embedding lookup: the one Gather of an initializer by input_ids.
    gathers = [
        n
        for n in graph.node
        if n.op_type == "Gather" and n.input[0] in inits and n.input[1] == "input_ids"
    ]
    if len(gathers) != 1:
        raise ValueError(f"{path}: expected one Gather of input_ids, found {len(gathers)}")
    gather = gathers[0]
    table = inits[gather.input[0]]
    if tuple(table.dims) != (arrays[DATA_NAME].shape[0], arrays[DATA_NAME].shape[1] * 2):
        raise ValueError(
            f"{path}: word-embedding table {list(table.dims)} differs from the shared one"
        )
    dequant = [
        n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == gather.output[0]
    ]
    last = dequant[0] if dequant else gather
    nodes, constants = lookup_nodes(gather.input[1], last.output[0], table.dims[0], block_size)
    position = list(graph.node).index(gather)
    for node in [gather, *dequant]:
        graph.node.remove(node)
    for node in reversed(nodes):
        graph.node.insert(position, node)
    graph.initializer.extend(constants)
    used = {i for n in graph.node for i in n.input}
    for name in [*gather.input[:1], *(i for n in dequant for i in n.input[1:])]:
        if name in inits and name not in used:
            graph.initializer.remove(inits[name])
    external: dict[str, str] = {}
    for name, array in arrays.items():
        tensor = numpy_helper.from_array(array, name)
        if shared is not None:
            target = shared / npy_name(name)
            relative = os.path.relpath(target, model_dir)
            # ONNX Runtime never reads this location (the runtime supplies the
            # tensor), and it refuses paths outside the model's folder anyway.
            set_external_data(tensor, location=npy_name(name), offset=0, length=array.nbytes)
            tensor.ClearField("raw_data")
            external[name] = relative
        graph.initializer.append(tensor)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(path))
    update_config(model_dir, external, block_size, shared is not None)


def lookup_nodes(ids: str, output: str, rows: int, block_size: int) -> tuple[list, list]:
    """The nodes (in order) and small constants that look ``ids`` up in the shared
    table and write the float32 embeddings to ``output``."""
    from onnx import helper, numpy_helper

    # Scales are stored as float16 (half the bytes) and widened once: ONNX
    # Runtime folds this Cast of a constant at load.
    widen = helper.make_node(
        "Cast", [SCALES_NAME], [SCALES_NAME + ".float32"], name="shared_scales_to_float32", to=1
    )
    lookup = helper.make_node(
        "GatherBlockQuantized",
        [DATA_NAME, ids, SCALES_NAME + ".float32", ZERO_POINTS_NAME],
        [GUARD_NAME + ".embeddings"],
        name="shared_word_embeddings",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=block_size,
        bits=BITS,
    )
    # GatherBlockQuantized returns zeros for an id past the table where Gather
    # fails; the runtime's load-time check relies on the failure to refuse a
    # tokenizer.json whose ids the model does not have (found by fuzzing). So
    # a plain Gather of a table of ones (one byte per row) runs beside it and
    # multiplies in: the same lookup semantics, for one multiply per value.
    guard = [
        helper.make_node("Gather", [GUARD_NAME, ids], [GUARD_NAME + ".rows"], axis=0),
        helper.make_node("Cast", [GUARD_NAME + ".rows"], [GUARD_NAME + ".float"], to=1),
        helper.make_node(
            "Unsqueeze", [GUARD_NAME + ".float", GUARD_NAME + ".axis"], [GUARD_NAME + ".column"]
        ),
        helper.make_node("Mul", [GUARD_NAME + ".embeddings", GUARD_NAME + ".column"], [output]),
    ]
    constants = [
        numpy_helper.from_array(np.ones(rows, dtype=np.uint8), GUARD_NAME),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), GUARD_NAME + ".axis"),
    ]
    return [widen, lookup, *guard], constants


def update_config(model_dir: Path, external: dict[str, str], block_size: int, shared: bool) -> None:
    """Record the external tensors and the table's format in ``secondopinion.json``."""
    config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    config.pop("external_initializers", None)
    if external:
        config["external_initializers"] = external
    config.setdefault("quantization", {})
    if isinstance(config["quantization"], dict):
        config["quantization"]["word_embeddings"] = {
            "shared": shared,
            "bits": BITS,
            "block_size": block_size,
            "zero_points": True,
        }
    (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="int8 model directories (rewritten)")
    parser.add_argument(
        "--table",
        type=Path,
        required=True,
        help="checkpoint folder with the base model.safetensors",
    )
    parser.add_argument("--shared", type=Path, help="folder for the shared .npy tensors")
    parser.add_argument("--block-size", type=int, default=16, help="values per scale (default 16)")
    parser.add_argument("--inline", action="store_true", help="a copy in each model, no sharing")
    args = parser.parse_args(argv)
    if args.inline == (args.shared is not None):
        parser.error("give exactly one of --shared DIR and --inline")
    arrays = quantize_blocks(base_table(args.table), args.block_size)
    if args.shared is not None:
        args.shared.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(args.shared / npy_name(name), array)
    for model_dir in args.models:
        rewrite_model(model_dir, arrays, args.block_size, args.shared)
        print(model_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
