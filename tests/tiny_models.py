"""Tiny BERT-architecture models, built at test time with random weights.

Everything a model directory holds is made here, offline and in well under a
second: an ONNX graph written node by node with ``onnx.helper`` (the same
operator pattern as a Hugging Face BERT export: word + position + token-type
embeddings, LayerNorm, multi-head self-attention with the additive attention
mask, a GELU feed-forward block, post-LayerNorm residuals), a WordPiece
``tokenizer.json`` made with ``tokenizers``, and ``secondopinion.json``.

The weights mean nothing; they are scaled so that different inputs give
visibly different outputs, which is all the tests need.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Whole words first, so ordinary test sentences become one token per word; the
# letters and their ## continuations let any lower-case word tokenise without
# [UNK] (rare words become several pieces, as in a real vocabulary).
WORDS = """
the a an of and or to in on for with by from at as is are was were be been it this that
these those what which who how why when where not no yes can may might will would should
query passage document model token length batch score rank relevant answer question
protein cell gene cancer disease patient study result effect treatment risk dose blood
brain heart virus infection immune response level increase decrease high low large small
human mouse data method analysis test trial group control sample clinical evidence
water energy light time year day week month number rate change growth loss cause
""".split()

LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
DIGITS = [str(d) for d in range(10)]
PUNCT = list(".,;:!?'\"()-")


def vocabulary() -> dict[str, int]:
    tokens = SPECIAL_TOKENS + WORDS + LETTERS + DIGITS + PUNCT
    tokens += ["##" + c for c in LETTERS + DIGITS]
    seen: dict[str, int] = {}
    for tok in tokens:
        seen.setdefault(tok, len(seen))
    return seen


def build_tokenizer(*, pitfall_padding: bool = True) -> Tokenizer:
    """A BERT WordPiece tokenizer over :func:`vocabulary`.

    With ``pitfall_padding`` the saved file carries truncation at 128 and fixed
    padding to 128, as all-MiniLM-L6-v2's ``tokenizer.json`` does, so tests show
    that loaders ignore it.
    """
    vocab = vocabulary()
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIAL_TOKENS)
    if pitfall_padding:
        tok.enable_truncation(128)
        tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]", length=128)
    return tok


@dataclass(frozen=True)
class BertShape:
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    intermediate: int = 64
    max_positions: int = 512
    type_vocab: int = 2


class _GraphBuilder:
    """Accumulates nodes and initialisers with unique names."""

    def __init__(self, rng: np.random.Generator, scale: float) -> None:
        self.rng = rng
        self.scale = scale
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, *shape: int, stem: str = "w", scale: float | None = None) -> str:
        s = self.scale if scale is None else scale
        return self.const((self.rng.standard_normal(shape) * s).astype(np.float32), stem)

    def op(self, op_type: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def dense(self, x: str, n_in: int, n_out: int, *, bias_value: float | None = None) -> str:
        w = self.weight(n_in, n_out, scale=1.0 / math.sqrt(n_in))
        if bias_value is None:
            b = self.weight(n_out, scale=0.1)
        else:
            b = self.const(np.full(n_out, bias_value, np.float32), "b")
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def layer_norm(self, x: str, n: int) -> str:
        gamma = self.const((1.0 + 0.1 * self.rng.standard_normal(n)).astype(np.float32), "ln_g")
        beta = self.weight(n, scale=0.1, stem="ln_b")
        return self.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-12)

    def gelu(self, x: str) -> str:
        # 0.5 * x * (1 + erf(x / sqrt 2)): BERT's exact GELU as exported.
        scaled = self.op("Div", [x, self.const(np.float32(math.sqrt(2.0)))])
        one_plus = self.op("Add", [self.op("Erf", [scaled]), self.const(np.float32(1.0))])
        return self.op("Mul", [self.op("Mul", [x, one_plus]), self.const(np.float32(0.5))])


def build_bert_graph(
    shape: BertShape,
    vocab_size: int,
    *,
    kind: str,
    num_logits: int = 1,
    classifier_bias: float | None = None,
    token_type_ids: bool = True,
    output_name: str | None = None,
    seed: int = 0,
    scale: float = 0.5,
) -> onnx.ModelProto:
    """An ONNX BERT encoder; ``kind`` "cross-encoder" adds a [CLS] head.

    Outputs: cross-encoder ``logits`` [B, num_logits]; embedder
    ``last_hidden_state`` [B, T, hidden] (or ``output_name``).
    """
    g = _GraphBuilder(np.random.default_rng(seed), scale)
    h, heads = shape.hidden, shape.heads
    dh = h // heads

    word = g.weight(vocab_size, h, stem="word_emb")
    pos = g.weight(shape.max_positions, h, stem="pos_emb")
    typ = g.weight(shape.type_vocab, h, stem="type_emb")

    # Positions 0..T-1 from the runtime shape of input_ids.
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const(np.array(1, np.int64))], axis=0)
    positions = g.op(
        "Range", [g.const(np.array(0, np.int64)), seq_len, g.const(np.array(1, np.int64))]
    )
    x = g.op("Add", [g.op("Gather", [word, "input_ids"]), g.op("Gather", [pos, positions])])
    if token_type_ids:
        x = g.op("Add", [x, g.op("Gather", [typ, "token_type_ids"])])
    else:
        x = g.op("Add", [x, g.op("Gather", [typ, g.const(np.array(0, np.int64))])])
    x = g.layer_norm(x, h)

    # Additive mask [B, 1, 1, T]: 0 where attended, float32 min where padded.
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    inverted = g.op("Sub", [g.const(np.float32(1.0)), mask_f])
    additive = g.op("Mul", [inverted, g.const(np.float32(np.finfo(np.float32).min))])
    additive = g.op("Unsqueeze", [additive, g.const(np.array([1, 2], np.int64))])

    split_heads = g.const(np.array([0, 0, heads, dh], np.int64))
    merge_heads = g.const(np.array([0, 0, h], np.int64))
    inv_sqrt_dh = g.const(np.float32(1.0 / math.sqrt(dh)))
    for _ in range(shape.layers):
        q = g.op("Transpose", [g.op("Reshape", [g.dense(x, h, h), split_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [g.dense(x, h, h), split_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [g.dense(x, h, h), split_heads])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), inv_sqrt_dh]), additive])
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_heads])
        x = g.layer_norm(g.op("Add", [x, g.dense(ctx, h, h)]), h)
        ffn = g.dense(g.gelu(g.dense(x, h, shape.intermediate)), shape.intermediate, h)
        x = g.layer_norm(g.op("Add", [x, ffn]), h)

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    if token_type_ids:
        inputs.append(
            helper.make_tensor_value_info(
                "token_type_ids", TensorProto.INT64, ["batch", "sequence"]
            )
        )

    if kind == "cross-encoder":
        cls = g.op("Gather", [x, g.const(np.array(0, np.int64))], axis=1)
        pooled = g.op("Tanh", [g.dense(cls, h, h)])
        logits = g.dense(pooled, h, num_logits, bias_value=classifier_bias)
        name = output_name or "logits"
        g.nodes.append(helper.make_node("Identity", [logits], [name]))
        outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", num_logits])]
    elif kind == "embedder":
        name = output_name or "last_hidden_state"
        g.nodes.append(helper.make_node("Identity", [x], [name]))
        outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "sequence", h])]
    else:
        raise ValueError(f"unknown kind {kind!r}")

    graph = helper.make_graph(g.nodes, f"tiny-{kind}", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_model_dir(
    directory: Path,
    *,
    kind: str = "cross-encoder",
    shape: BertShape | None = None,
    max_length: int = 128,
    num_logits: int = 1,
    classifier_bias: float | None = None,
    token_type_ids: bool = True,
    output_name: str | None = None,
    pooling: str = "mean",
    normalize: bool = True,
    seed: int = 0,
) -> Path:
    """Write model.onnx, tokenizer.json and secondopinion.json into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    shape = shape or BertShape()
    tok = build_tokenizer()
    model = build_bert_graph(
        shape,
        tok.get_vocab_size(),
        kind=kind,
        num_logits=num_logits,
        classifier_bias=classifier_bias,
        token_type_ids=token_type_ids,
        output_name=output_name,
        seed=seed,
    )
    onnx.save(model, str(directory / "model.onnx"))
    tok.save(str(directory / "tokenizer.json"))
    config: dict[str, object] = {"format": 1, "kind": kind, "max_length": max_length}
    if kind == "cross-encoder":
        config.update(
            activation="sigmoid" if num_logits == 1 else "softmax", floor=None, name="tiny-ce"
        )
    else:
        config.update(pooling=pooling, normalize=normalize, name="tiny-embedder")
    (directory / "secondopinion.json").write_text(json.dumps(config, indent=2))
    return directory


def random_text(rng: np.random.Generator, n_words: int) -> str:
    """Words from the vocabulary, mostly one token each, some spelled out letter by letter."""
    words = []
    for _ in range(n_words):
        if rng.random() < 0.1:
            words.append("".join(rng.choice(LETTERS, size=int(rng.integers(3, 9)))))
        else:
            words.append(str(rng.choice(WORDS)))
    return " ".join(words)
