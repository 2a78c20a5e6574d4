"""Fixtures for checkpoint conversion tests: ELECTRA checkpoints as released, and references.

Builds the variables of the original TF1 ELECTRA checkpoints (Google's and HFL's, name-keyed,
TF kernels ``[in, out]``) and of the HuggingFace ``ElectraForPreTraining`` /
``ElectraForMaskedLM`` copies (PyTorch linear weights ``[out, in]``), every tensor filled with
distinct random values; writes them in their native formats; and computes an independent
float64 NumPy forward pass on each naming scheme, to compare a converted model against.
Also writes a small Chinese BERT-style WordPiece vocabulary.

Nothing here imports the package under test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import string
from typing import Iterator

import numpy as np
from scipy.special import erf

LAYER_NORM_EPS = 1e-12
MASK_ADDER = -10000.0

# A TF1 block's parameters, as (suffix, kind, in-width key, out-width key); "h" is the block's
# width, "ffn" its intermediate size. HF names follow in `_HF_BLOCK`.
_TF1_BLOCK = [
    ("attention/self/query", "dense", "h", "h"),
    ("attention/self/key", "dense", "h", "h"),
    ("attention/self/value", "dense", "h", "h"),
    ("attention/output/dense", "dense", "h", "h"),
    ("attention/output/LayerNorm", "norm", "h", "h"),
    ("intermediate/dense", "dense", "h", "ffn"),
    ("output/dense", "dense", "ffn", "h"),
    ("output/LayerNorm", "norm", "h", "h"),
]
_HF_BLOCK = {
    "attention/self/query": "attention.self.query",
    "attention/self/key": "attention.self.key",
    "attention/self/value": "attention.self.value",
    "attention/output/dense": "attention.output.dense",
    "attention/output/LayerNorm": "attention.output.LayerNorm",
    "intermediate/dense": "intermediate.dense",
    "output/dense": "output.dense",
    "output/LayerNorm": "output.LayerNorm",
}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Sizes of an ELECTRA discriminator and its generator (which shares the embeddings)."""

    vocab_size: int
    embedding_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    gen_hidden_size: int
    gen_num_heads: int
    gen_intermediate_size: int
    gen_num_layers: int
    max_position_embeddings: int
    type_vocab_size: int = 2

    @classmethod
    def tiny(cls) -> "Sizes":
        """Sizes small enough for unit tests, with both embedding projections (E != H, Hg)."""
        return cls(vocab_size=120, embedding_size=16, hidden_size=32, num_layers=2,
                   num_heads=2, intermediate_size=64, gen_hidden_size=16, gen_num_heads=1,
                   gen_intermediate_size=64, gen_num_layers=2, max_position_embeddings=64)


# --------------------------------------------------------------------------------------------
# TF1 variables and checkpoints
# --------------------------------------------------------------------------------------------

def _tf1_shapes(sizes: Sizes, generator: bool) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """Yields (name, shape, kind) for every float variable; kind picks the value distribution."""
    e, v = sizes.embedding_size, sizes.vocab_size
    yield "electra/embeddings/word_embeddings", (v, e), "embedding"
    yield "electra/embeddings/token_type_embeddings", (sizes.type_vocab_size, e), "embedding"
    yield "electra/embeddings/position_embeddings", (sizes.max_position_embeddings, e), "embedding"
    yield "electra/embeddings/LayerNorm/gamma", (e,), "gamma"
    yield "electra/embeddings/LayerNorm/beta", (e,), "bias"

    def network(prefix: str, h: int, ffn: int, layers: int):
        if e != h:
            yield f"{prefix}/embeddings_project/kernel", (e, h), "kernel"
            yield f"{prefix}/embeddings_project/bias", (h,), "bias"
        widths = {"h": h, "ffn": ffn}
        for i in range(layers):
            for suffix, kind, n_in, n_out in _TF1_BLOCK:
                name = f"{prefix}/encoder/layer_{i}/{suffix}"
                if kind == "dense":
                    yield f"{name}/kernel", (widths[n_in], widths[n_out]), "kernel"
                    yield f"{name}/bias", (widths[n_out],), "bias"
                else:
                    yield f"{name}/gamma", (h,), "gamma"
                    yield f"{name}/beta", (h,), "bias"

    h = sizes.hidden_size
    yield from network("electra", h, sizes.intermediate_size, sizes.num_layers)
    yield "discriminator_predictions/dense/kernel", (h, h), "kernel"
    yield "discriminator_predictions/dense/bias", (h,), "bias"
    yield "discriminator_predictions/dense_1/kernel", (h, 1), "kernel"
    yield "discriminator_predictions/dense_1/bias", (1,), "bias"
    if generator:
        hg = sizes.gen_hidden_size
        yield from network("generator", hg, sizes.gen_intermediate_size, sizes.gen_num_layers)
        yield "generator_predictions/dense/kernel", (hg, e), "kernel"
        yield "generator_predictions/dense/bias", (e,), "bias"
        yield "generator_predictions/LayerNorm/gamma", (e,), "gamma"
        yield "generator_predictions/LayerNorm/beta", (e,), "bias"
        yield "generator_predictions/output_bias", (v,), "bias"


def tf1_variables(sizes: Sizes, seed: int, *, generator: bool = True,
                  optimizer_slots: bool = False) -> dict[str, np.ndarray]:
    """The variables of a released TF1 ELECTRA checkpoint, as {name: value}, in save order.

    Float variables are float32 and all distinct: kernels ~ N(0, 1/fan_in) (activations stay
    of order one, so attention is far from uniform), embeddings ~ N(0, 0.5^2), biases and
    LayerNorm betas ~ N(0, 0.1^2), gammas ~ 1 + N(0, 0.1^2); each tensor also gets its own
    offset in [-0.05, 0.05]. ``global_step`` is an int64 scalar. With ``optimizer_slots``,
    every float variable NAME also has ``NAME/adam_m`` and ``NAME/adam_v`` (positive) of its
    shape, as ELECTRA's AdamWeightDecayOptimizer saves them.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape, kind in _tf1_shapes(sizes, generator):
        scale = {"kernel": 1.0 / np.sqrt(shape[0]), "embedding": 0.5,
                 "bias": 0.1, "gamma": 0.1}[kind]
        value = rng.normal(0.0, scale, shape) + rng.uniform(-0.05, 0.05)
        if kind == "gamma":
            value += 1.0
        out[name] = value.astype(np.float32)
    if optimizer_slots:
        for name in list(out):
            shape = out[name].shape
            out[f"{name}/adam_m"] = rng.normal(0.0, 1e-3, shape).astype(np.float32)
            out[f"{name}/adam_v"] = (np.abs(rng.normal(0.0, 1e-6, shape)) + 1e-9).astype(
                np.float32)
    out["global_step"] = np.array(int(rng.integers(1000, 10**6)), dtype=np.int64)
    return out


def write_tf1_checkpoint(prefix: str, variables: dict[str, np.ndarray]) -> str:
    """Writes ``variables`` as a name-keyed TF1 checkpoint at ``prefix``; returns the prefix.

    Uses a TF1 graph, variables named exactly as the keys and ``tf.compat.v1.train.Saver``,
    like the released checkpoints (``prefix.index``, ``prefix.data-*``, and the directory's
    ``checkpoint`` state file; no meta graph).
    """
    import tensorflow as tf

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with tf.Graph().as_default():
        feeds, var_list = {}, {}
        for name, value in variables.items():
            value = np.asarray(value)
            holder = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), value.shape)
            var_list[name] = tf.compat.v1.Variable(holder, name=name, trainable=False)
            feeds[holder] = value
        saver = tf.compat.v1.train.Saver(var_list=var_list, max_to_keep=None)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.variables_initializer(list(var_list.values())), feeds)
            return saver.save(sess, prefix, write_meta_graph=False)


# --------------------------------------------------------------------------------------------
# HuggingFace tensors, config and files
# --------------------------------------------------------------------------------------------

def _num_layers(names, encoder_prefix: str, separator: str) -> int:
    """How many ``{encoder_prefix}{i}{separator}...`` layers the names hold."""
    found = {int(n[len(encoder_prefix):].split(separator, 1)[0])
             for n in names if n.startswith(encoder_prefix)}
    assert found == set(range(len(found))), f"layers not numbered 0..n-1: {sorted(found)}"
    return len(found)


def hf_from_tf1(variables: dict[str, np.ndarray], network: str = "discriminator", *,
                include_tied_head: bool = True) -> dict[str, np.ndarray]:
    """The HuggingFace tensors of ``network`` holding the values of TF1 ``variables``.

    "discriminator" gives ``ElectraForPreTraining`` names, "generator" ``ElectraForMaskedLM``
    names (its ``electra.embeddings.*`` copied from the shared ``electra/embeddings/*``).
    Kernels are transposed to ``[out, in]``; optimizer slots and ``global_step`` are dropped.
    ``include_tied_head=False`` leaves out ``generator_lm_head.weight`` (equal to the word
    embeddings), as ``save_pretrained`` drops tied weights from ``model.safetensors``.
    """
    if network not in ("discriminator", "generator"):
        raise ValueError(f"network must be 'discriminator' or 'generator', not {network!r}")
    tf1 = "electra" if network == "discriminator" else "generator"
    f32 = lambda name: np.array(variables[name], dtype=np.float32)  # noqa: E731
    out: dict[str, np.ndarray] = {}

    def dense(hf_name: str, tf_name: str) -> None:
        out[f"{hf_name}.weight"] = np.ascontiguousarray(f32(f"{tf_name}/kernel").T)
        out[f"{hf_name}.bias"] = f32(f"{tf_name}/bias")

    def norm(hf_name: str, tf_name: str) -> None:
        out[f"{hf_name}.weight"] = f32(f"{tf_name}/gamma")
        out[f"{hf_name}.bias"] = f32(f"{tf_name}/beta")

    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"electra.embeddings.{table}.weight"] = f32(f"electra/embeddings/{table}")
    norm("electra.embeddings.LayerNorm", "electra/embeddings/LayerNorm")
    if f"{tf1}/embeddings_project/kernel" in variables:
        dense("electra.embeddings_project", f"{tf1}/embeddings_project")
    for i in range(_num_layers(variables, f"{tf1}/encoder/layer_", "/")):
        for suffix, kind, _, _ in _TF1_BLOCK:
            (dense if kind == "dense" else norm)(
                f"electra.encoder.layer.{i}.{_HF_BLOCK[suffix]}", f"{tf1}/encoder/layer_{i}/{suffix}")
    if network == "discriminator":
        dense("discriminator_predictions.dense", "discriminator_predictions/dense")
        dense("discriminator_predictions.dense_prediction", "discriminator_predictions/dense_1")
    else:
        dense("generator_predictions.dense", "generator_predictions/dense")
        norm("generator_predictions.LayerNorm", "generator_predictions/LayerNorm")
        if include_tied_head:
            out["generator_lm_head.weight"] = f32("electra/embeddings/word_embeddings")
        out["generator_lm_head.bias"] = f32("generator_predictions/output_bias")
    return out


def hf_config(sizes: Sizes, network: str = "discriminator") -> dict:
    """The HuggingFace ``config.json`` of ``network`` ("discriminator" or "generator")."""
    if network == "discriminator":
        arch, h, layers, heads, ffn = ("ElectraForPreTraining", sizes.hidden_size,
                                       sizes.num_layers, sizes.num_heads, sizes.intermediate_size)
    elif network == "generator":
        arch, h, layers, heads, ffn = ("ElectraForMaskedLM", sizes.gen_hidden_size,
                                       sizes.gen_num_layers, sizes.gen_num_heads,
                                       sizes.gen_intermediate_size)
    else:
        raise ValueError(f"network must be 'discriminator' or 'generator', not {network!r}")
    return {
        "architectures": [arch], "model_type": "electra", "vocab_size": sizes.vocab_size,
        "embedding_size": sizes.embedding_size, "hidden_size": h, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": ffn, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": sizes.max_position_embeddings,
        "type_vocab_size": sizes.type_vocab_size, "initializer_range": 0.02,
        "layer_norm_eps": LAYER_NORM_EPS, "position_embedding_type": "absolute",
        "pad_token_id": 0,
    }


def write_hf_model(directory: str, tensors: dict[str, np.ndarray], config: dict) -> str:
    """Writes ``config.json`` and ``model.safetensors`` (metadata format "pt") into
    ``directory``; returns the directory."""
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
              os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    return directory


# --------------------------------------------------------------------------------------------
# NumPy reference forward passes (float64)
# --------------------------------------------------------------------------------------------

def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * gamma + beta


def _block(x: np.ndarray, adder: np.ndarray, num_heads: int, p) -> np.ndarray:
    """One post-LayerNorm BERT block; ``p(part)`` gives ``(W [in, out], b)`` for a dense part
    or ``(gamma, beta)`` for a LayerNorm part, parts named by the TF1 suffixes."""
    b, s, h = x.shape
    d = h // num_heads

    def heads(t: np.ndarray) -> np.ndarray:
        return t.reshape(b, s, num_heads, d).transpose(0, 2, 1, 3)

    def dense(t: np.ndarray, part: str) -> np.ndarray:
        w, bias = p(part)
        return t @ w + bias

    q, k, v = (heads(dense(x, f"attention/self/{n}")) for n in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + adder[:, None, None, :]
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    probs = scores / scores.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
    x = _layer_norm(x + dense(context, "attention/output/dense"),
                    *p("attention/output/LayerNorm"))
    ffn = dense(_gelu(dense(x, "intermediate/dense")), "output/dense")
    return _layer_norm(x + ffn, *p("output/LayerNorm"))


def _embed(word, position, token_type, gamma, beta, token_ids, segment_ids) -> np.ndarray:
    s = np.asarray(token_ids).shape[1]
    x = word[np.asarray(token_ids)] + position[np.arange(s)][None] + token_type[
        np.asarray(segment_ids)]
    return _layer_norm(x, gamma, beta)


def _adder(padding_mask) -> np.ndarray:
    return (1.0 - np.asarray(padding_mask, dtype=np.float64)) * MASK_ADDER


def _gather(x: np.ndarray, positions) -> np.ndarray:
    return np.take_along_axis(x, np.asarray(positions)[..., None].astype(np.int64), axis=1)


def numpy_encoder_tf1(variables: dict[str, np.ndarray], prefix: str, token_ids, segment_ids,
                      padding_mask, num_heads: int) -> np.ndarray:
    """Sequence output ``[B, S, width]`` (float64) of the TF1-named encoder ``prefix``.

    ``prefix`` is "electra" (discriminator) or "generator"; both embed with the shared
    ``electra/embeddings``, then apply ``{prefix}/embeddings_project`` if present and the
    layers of ``{prefix}/encoder``.
    """
    g = lambda name: np.asarray(variables[name], dtype=np.float64)  # noqa: E731
    emb = "electra/embeddings"
    x = _embed(g(f"{emb}/word_embeddings"), g(f"{emb}/position_embeddings"),
               g(f"{emb}/token_type_embeddings"), g(f"{emb}/LayerNorm/gamma"),
               g(f"{emb}/LayerNorm/beta"), token_ids, segment_ids)
    if f"{prefix}/embeddings_project/kernel" in variables:
        x = x @ g(f"{prefix}/embeddings_project/kernel") + g(f"{prefix}/embeddings_project/bias")
    adder = _adder(padding_mask)
    for i in range(_num_layers(variables, f"{prefix}/encoder/layer_", "/")):
        def p(part: str, i: int = i) -> tuple[np.ndarray, np.ndarray]:
            name = f"{prefix}/encoder/layer_{i}/{part}"
            if part.endswith("LayerNorm"):
                return g(f"{name}/gamma"), g(f"{name}/beta")
            return g(f"{name}/kernel"), g(f"{name}/bias")
        x = _block(x, adder, num_heads, p)
    return x


def numpy_discriminator_logits_tf1(variables: dict[str, np.ndarray], token_ids, segment_ids,
                                   padding_mask, num_heads: int) -> np.ndarray:
    """Replaced-token-detection logits ``[B, S]`` from TF1-named variables."""
    g = lambda name: np.asarray(variables[name], dtype=np.float64)  # noqa: E731
    x = numpy_encoder_tf1(variables, "electra", token_ids, segment_ids, padding_mask, num_heads)
    x = _gelu(x @ g("discriminator_predictions/dense/kernel")
              + g("discriminator_predictions/dense/bias"))
    return (x @ g("discriminator_predictions/dense_1/kernel")
            + g("discriminator_predictions/dense_1/bias"))[..., 0]


def numpy_generator_logits_tf1(variables: dict[str, np.ndarray], token_ids, segment_ids,
                               padding_mask, num_heads: int, positions) -> np.ndarray:
    """Masked-LM logits ``[B, N, V]`` at ``positions [B, N]`` from TF1-named variables
    (output layer tied to ``electra/embeddings/word_embeddings``)."""
    g = lambda name: np.asarray(variables[name], dtype=np.float64)  # noqa: E731
    x = numpy_encoder_tf1(variables, "generator", token_ids, segment_ids, padding_mask,
                          num_heads)
    x = _gather(x, positions)
    x = _gelu(x @ g("generator_predictions/dense/kernel") + g("generator_predictions/dense/bias"))
    x = _layer_norm(x, g("generator_predictions/LayerNorm/gamma"),
                    g("generator_predictions/LayerNorm/beta"))
    return x @ g("electra/embeddings/word_embeddings").T + g("generator_predictions/output_bias")


def numpy_encoder_hf(tensors: dict[str, np.ndarray], token_ids, segment_ids, padding_mask,
                     num_heads: int) -> np.ndarray:
    """Sequence output ``[B, S, width]`` (float64) of the HF-named ``electra.*`` encoder
    (``y = x @ W.T + b``)."""
    g = lambda name: np.asarray(tensors[name], dtype=np.float64)  # noqa: E731
    emb = "electra.embeddings"
    x = _embed(g(f"{emb}.word_embeddings.weight"), g(f"{emb}.position_embeddings.weight"),
               g(f"{emb}.token_type_embeddings.weight"), g(f"{emb}.LayerNorm.weight"),
               g(f"{emb}.LayerNorm.bias"), token_ids, segment_ids)
    if "electra.embeddings_project.weight" in tensors:
        x = x @ g("electra.embeddings_project.weight").T + g("electra.embeddings_project.bias")
    adder = _adder(padding_mask)
    for i in range(_num_layers(tensors, "electra.encoder.layer.", ".")):
        def p(part: str, i: int = i) -> tuple[np.ndarray, np.ndarray]:
            name = f"electra.encoder.layer.{i}.{_HF_BLOCK[part]}"
            if part.endswith("LayerNorm"):
                return g(f"{name}.weight"), g(f"{name}.bias")
            return g(f"{name}.weight").T, g(f"{name}.bias")
        x = _block(x, adder, num_heads, p)
    return x


def numpy_discriminator_logits_hf(tensors: dict[str, np.ndarray], token_ids, segment_ids,
                                  padding_mask, num_heads: int) -> np.ndarray:
    """Replaced-token-detection logits ``[B, S]`` from ``ElectraForPreTraining`` tensors."""
    g = lambda name: np.asarray(tensors[name], dtype=np.float64)  # noqa: E731
    x = numpy_encoder_hf(tensors, token_ids, segment_ids, padding_mask, num_heads)
    x = _gelu(x @ g("discriminator_predictions.dense.weight").T
              + g("discriminator_predictions.dense.bias"))
    return (x @ g("discriminator_predictions.dense_prediction.weight").T
            + g("discriminator_predictions.dense_prediction.bias"))[..., 0]


def numpy_generator_logits_hf(tensors: dict[str, np.ndarray], token_ids, segment_ids,
                              padding_mask, num_heads: int, positions) -> np.ndarray:
    """Masked-LM logits ``[B, N, V]`` at ``positions [B, N]`` from ``ElectraForMaskedLM``
    tensors; without ``generator_lm_head.weight`` the head is tied to the word embeddings."""
    g = lambda name: np.asarray(tensors[name], dtype=np.float64)  # noqa: E731
    x = numpy_encoder_hf(tensors, token_ids, segment_ids, padding_mask, num_heads)
    x = _gather(x, positions)
    x = _gelu(x @ g("generator_predictions.dense.weight").T
              + g("generator_predictions.dense.bias"))
    x = _layer_norm(x, g("generator_predictions.LayerNorm.weight"),
                    g("generator_predictions.LayerNorm.bias"))
    head = g("generator_lm_head.weight" if "generator_lm_head.weight" in tensors
             else "electra.embeddings.word_embeddings.weight")
    return x @ head.T + g("generator_lm_head.bias")


# --------------------------------------------------------------------------------------------
# Chinese BERT-style vocabulary
# --------------------------------------------------------------------------------------------

# Common simplified Chinese characters (duplicates are dropped when the vocabulary is built).
_COMMON_CJK = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家"
    "学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见"
    "经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话"
    "儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真"
    "听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立"
    "马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制"
    "解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎"
    "元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武"
    "半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱"
    "党倒未持音模型训练测试数据汉中文字词句"
)
_FULL_WIDTH_PUNCTUATION = "，。！？、；：“”‘’（）《》【】—…·"
_ENGLISH_PIECES = ["the", "of", "and", "to", "in", "is", "model", "data", "train", "test",
                   "electra", "bert", "token", "##s", "##ing", "##ed", "##er", "##ly", "##ion"]


def write_chinese_bert_vocab(path: str, extra_chars: str = "") -> list[str]:
    """Writes a small Chinese BERT-style WordPiece vocabulary (one token a line); returns it.

    Layout as in Google's ``chinese_L-12_H-768_A-12`` vocab: ``[PAD]`` 0, ``[unused1..99]``
    1..99, ``[UNK]`` 100, ``[CLS]`` 101, ``[SEP]`` 102, ``[MASK]`` 103, then ASCII punctuation,
    digits, lowercase letters, common CJK characters, full-width punctuation, English word
    pieces, each character of ``extra_chars`` not yet present, and finally the ``##`` form of
    every CJK character. No token appears twice.
    """
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)]
    tokens += ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    cjk = list(dict.fromkeys(_COMMON_CJK))
    singles = (list(string.punctuation) + list(string.digits) + list(string.ascii_lowercase)
               + cjk + list(_FULL_WIDTH_PUNCTUATION) + _ENGLISH_PIECES)
    singles = list(dict.fromkeys(singles))
    seen = set(tokens) | set(singles)
    for ch in extra_chars:
        if not ch.isspace() and ch not in seen:
            singles.append(ch)
            seen.add(ch)
            if "\u4e00" <= ch <= "\u9fff":
                cjk.append(ch)
    tokens += singles + [f"##{ch}" for ch in cjk]
    assert len(tokens) == len(set(tokens))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return tokens
