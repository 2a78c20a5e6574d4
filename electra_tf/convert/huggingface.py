"""HuggingFace `transformers` ELECTRA layout <-> the reference names (convert/layout.py).

`ElectraForPreTraining` (a discriminator) and `ElectraForMaskedLM` (a generator) are each one
`config.json` + `model.safetensors` directory; both carry their own copy of the embeddings.
PyTorch linear weights are [out, in], so every dense kernel is transposed; embedding tables
and LayerNorm vectors are not. Files are read and written with the `safetensors` package in
NumPy mode: no torch is needed. transformers itself offers no TensorFlow-free reader for this,
hence this module.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from electra_tf.convert import layout

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
# Buffers, not weights, that some exports include.
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")

DISCRIMINATOR_ARCHS = ("ElectraForPreTraining", "ElectraModel")
GENERATOR_ARCHS = ("ElectraForMaskedLM",)


def _linear(hf: str, tf1: str) -> dict:
    return {f"{hf}.weight": (f"{tf1}/kernel", True), f"{hf}.bias": (f"{tf1}/bias", False)}


def _norm(hf: str, tf1: str) -> dict:
    return {f"{hf}.weight": (f"{tf1}/gamma", False), f"{hf}.bias": (f"{tf1}/beta", False)}


def name_map(arch: layout.Architecture, network: str) -> dict[str, tuple[str, bool]]:
    """HF name -> (reference name, transposed?) of one HF model of `arch`.

    Args:
      arch: the model's architecture.
      network: "discriminator" (`ElectraForPreTraining`) or "generator"
        (`ElectraForMaskedLM`; its `electra.embeddings.*` are the shared block, or the
        generator's own under untied embeddings).
    """
    generator = network == "generator"
    net = arch.generator if generator else arch.discriminator
    scope = layout.GENERATOR if generator else layout.DISCRIMINATOR
    emb = layout.GENERATOR_EMBEDDINGS if (
        generator and arch.untied_generator_embeddings) else layout.EMBEDDINGS
    names = {}
    for part in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        names[f"electra.embeddings.{part}.weight"] = (f"{emb}/{part}", False)
    names.update(_norm("electra.embeddings.LayerNorm", f"{emb}/LayerNorm"))
    if arch.embedding_size != net.hidden_size:
        names.update(_linear("electra.embeddings_project", f"{scope}/embeddings_project"))
    for i in range(net.num_layers):
        hf, tf1 = f"electra.encoder.layer.{i}", f"{scope}/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            names.update(_linear(f"{hf}.attention.self.{part}", f"{tf1}/attention/self/{part}"))
        names.update(_linear(f"{hf}.attention.output.dense", f"{tf1}/attention/output/dense"))
        names.update(_norm(f"{hf}.attention.output.LayerNorm",
                           f"{tf1}/attention/output/LayerNorm"))
        names.update(_linear(f"{hf}.intermediate.dense", f"{tf1}/intermediate/dense"))
        names.update(_linear(f"{hf}.output.dense", f"{tf1}/output/dense"))
        names.update(_norm(f"{hf}.output.LayerNorm", f"{tf1}/output/LayerNorm"))
    if generator:
        names.update(_linear("generator_predictions.dense", f"{layout.GEN_HEAD}/dense"))
        names.update(_norm("generator_predictions.LayerNorm", f"{layout.GEN_HEAD}/LayerNorm"))
        names["generator_lm_head.bias"] = (f"{layout.GEN_HEAD}/output_bias", False)
    elif arch.discriminator_head:
        names.update(_linear("discriminator_predictions.dense", f"{layout.DISC_HEAD}/dense"))
        names.update(_linear("discriminator_predictions.dense_prediction",
                             f"{layout.DISC_HEAD}/dense_1"))
    return names


def _normalise_name(name: str) -> str:
    """`electra.`-less names (a saved `ElectraModel`) and old `gamma`/`beta` LayerNorm names
    in the `ElectraForPreTraining` spelling."""
    if name.startswith(("embeddings", "encoder.")):
        name = "electra." + name
    if ".LayerNorm." in name:
        name = name.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(
            ".LayerNorm.beta", ".LayerNorm.bias")
    return name


def read_config(directory: str, problems: list) -> Optional[dict]:
    """The `config.json` of an HF model directory, or None (with the problem appended)."""
    path = os.path.join(directory, CONFIG)
    if not os.path.isfile(path):
        problems.append(f"{directory}: no {CONFIG}; pass a HuggingFace model directory "
                        "(config.json + model.safetensors)")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{path}: not readable JSON ({e})")
        return None
    if not isinstance(config, dict) or config.get("model_type") != "electra":
        problems.append(f"{path}: model_type is {config.get('model_type') if isinstance(config, dict) else None!r}, not 'electra'")
        return None
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        problems.append(f"{path}: hidden_act {act!r}; only the exact 'gelu' of ELECTRA is "
                        "supported")
    return config


def read_tensors(directory: str, problems: list) -> Optional[dict]:
    """Every tensor of `model.safetensors` (or its sharded index) as NumPy arrays."""
    from safetensors.numpy import load_file

    single = os.path.join(directory, WEIGHTS)
    index = os.path.join(directory, WEIGHTS_INDEX)
    if os.path.isfile(single):
        files = [single]
    elif os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
            files = [os.path.join(directory, name) for name in sorted(set(weight_map.values()))]
        except (OSError, ValueError, KeyError, TypeError) as e:
            problems.append(f"{index}: not a safetensors index ({e})")
            return None
    else:
        for other in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"):
            if os.path.isfile(os.path.join(directory, other)):
                problems.append(
                    f"{directory} has {other} but no {WEIGHTS}: only safetensors is read "
                    "(no torch here); re-save it with transformers, keeping its class: "
                    "ElectraForPreTraining.from_pretrained(DIR).save_pretrained(DIR, "
                    "safe_serialization=True) (ElectraForMaskedLM for a generator)")
                return None
        problems.append(f"{directory}: no {WEIGHTS}; pass a HuggingFace model directory")
        return None
    tensors = {}
    for path in files:
        try:
            loaded = load_file(path)
        except Exception as e:  # pylint: disable=broad-except
            problems.append(f"{path}: not a readable safetensors file ({str(e)[:200]})")
            return None
        for name, value in loaded.items():
            tensors[_normalise_name(name)] = value
    return tensors


def architecture(config: dict, generator_config: Optional[dict] = None,
                 problems: Optional[list] = None) -> layout.Architecture:
    """The `Architecture` an HF discriminator config (and generator config) describe."""
    def network(c):
        return layout.Network(int(c["hidden_size"]), int(c["num_hidden_layers"]),
                              int(c["num_attention_heads"]), int(c["intermediate_size"]))

    hidden = int(config["hidden_size"])
    arch = layout.Architecture(
        vocab_size=int(config["vocab_size"]),
        embedding_size=int(config.get("embedding_size", hidden)),
        max_position_embeddings=int(config.get("max_position_embeddings", 512)),
        type_vocab_size=int(config.get("type_vocab_size", 2)),
        discriminator=network(config),
        generator=network(generator_config) if generator_config else None)
    return arch


def to_reference(tensors: dict, arch: layout.Architecture, network: str, where: str,
                 problems: list, display: Optional[dict] = None) -> dict:
    """HF tensors -> reference-named tensors, transposed; unknown names are appended to
    `problems`. `display` (reference name -> "WHERE: HF name") is filled for every expected
    tensor, so that `layout.check_tensors` reports missing and mis-shaped ones by the names
    the user's files use."""
    names = name_map(arch, network)
    if display is not None:
        display.update({target: f"{where}: {hf_name}"
                        for hf_name, (target, _) in names.items()})
    out = {}
    for hf_name, value in tensors.items():
        if hf_name in names:
            target, transpose = names[hf_name]
            value = np.asarray(value, dtype=np.float32)
            out[target] = value.T if transpose else value
        elif hf_name.endswith(_BUFFERS):
            continue
        elif network == "generator" and hf_name == "generator_lm_head.weight":
            continue  # tied to the word embeddings; checked by the caller
        elif hf_name.startswith("discriminator_predictions.") and not arch.discriminator_head:
            problems.append(f"{where}: {hf_name} present but the config has no discriminator "
                            "head")
        else:
            problems.append(f"{where}: unknown tensor {hf_name} {list(np.shape(value))}")
    return out


def from_reference(reference: dict, arch: layout.Architecture, network: str) -> dict:
    """Reference-named tensors -> the tensors of one HF model (`name_map` inverted)."""
    out = {}
    for hf_name, (name, transpose) in name_map(arch, network).items():
        value = np.asarray(reference[name], dtype=np.float32)
        out[hf_name] = np.ascontiguousarray(value.T if transpose else value)
    if network == "generator":
        # transformers ties the LM head to the word table; the file carries both.
        out["generator_lm_head.weight"] = out["electra.embeddings.word_embeddings.weight"]
    return out


def config_dict(arch: layout.Architecture, network: str, *, dropout: float,
                initializer_range: float, layer_norm_epsilon: float, pad_token_id: int) -> dict:
    """The `config.json` transformers reads for one network of `arch`."""
    generator = network == "generator"
    net = arch.generator if generator else arch.discriminator
    if generator:
        architectures = ["ElectraForMaskedLM"]
    else:
        architectures = ["ElectraForPreTraining" if arch.discriminator_head else "ElectraModel"]
    return {
        "architectures": architectures,
        "model_type": "electra",
        "vocab_size": arch.vocab_size,
        "embedding_size": arch.embedding_size,
        "hidden_size": net.hidden_size,
        "num_hidden_layers": net.num_layers,
        "num_attention_heads": net.num_heads,
        "intermediate_size": net.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
        "max_position_embeddings": arch.max_position_embeddings,
        "type_vocab_size": arch.type_vocab_size,
        "initializer_range": initializer_range,
        "layer_norm_eps": layer_norm_epsilon,
        "position_embedding_type": "absolute",
        "pad_token_id": pad_token_id,
        "summary_type": "first",
        "summary_use_proj": True,
        "summary_activation": "gelu",
        "summary_last_dropout": 0.1,
    }


def tokenizer_files(tokens: list, lower_case: bool, max_length: int) -> dict[str, str]:
    """`tokenizer_config.json` and `special_tokens_map.json` for transformers'
    `ElectraTokenizer(Fast)` (a BERT WordPiece tokenizer over `vocab.txt`)."""
    special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
               "cls_token": "[CLS]", "mask_token": "[MASK]"}
    config = dict(special, tokenizer_class="ElectraTokenizer", do_lower_case=lower_case,
                  strip_accents=None, tokenize_chinese_chars=True,
                  model_max_length=max_length)
    return {"tokenizer_config.json": json.dumps(config, indent=2) + "\n",
            "special_tokens_map.json": json.dumps(special, indent=2) + "\n"}


def write_weights(path: str, tensors: dict) -> None:
    """`model.safetensors` with the metadata transformers expects of a PyTorch export."""
    from safetensors.numpy import save_file

    save_file(tensors, path, metadata={"format": "pt"})
