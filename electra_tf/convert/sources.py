"""Readers of the three source layouts into reference-named tensors (convert/layout.py).

Each reader appends every problem it finds to a list instead of stopping at the first, so
that one run of the converter names all of them.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Optional

import numpy as np

from electra_tf.convert import huggingface, layout

SOURCES = ("google_tf1", "huggingface", "keras_hub")


@dataclasses.dataclass
class Source:
    """What a reader found.

    Attributes:
      tensors: reference name -> float32 array.
      arch: the architecture the tensors describe.
      vocab_path: the vocabulary found beside the source, or None.
      tokens: the vocabulary, when the source holds it itself (a keras-hub preset).
      lower_case: the source's tokenizer casing, when it records it.
      hyper: model hyper-parameters the source records (dropout, initializer range, LayerNorm
        epsilon), as `model.*` config keys.
      ignored: names present in the source but deliberately not converted (optimizer state).
    """

    tensors: dict
    arch: layout.Architecture
    vocab_path: Optional[str] = None
    tokens: Optional[list] = None
    lower_case: Optional[bool] = None
    hyper: dict = dataclasses.field(default_factory=dict)
    ignored: list = dataclasses.field(default_factory=list)
    display_names: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)


def _beside(path: str, name: str) -> Optional[str]:
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    candidate = os.path.join(directory, name)
    return candidate if os.path.isfile(candidate) else None


# --- Google TF1 ----------------------------------------------------------------------------

def tf1_prefix(path: str, problems: list) -> Optional[str]:
    """The checkpoint prefix of `path`: a prefix, a `.index`/`.data-*` file, or a directory
    holding one checkpoint (with or without a `checkpoint` index file)."""
    import tensorflow as tf

    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = sorted(glob.glob(os.path.join(path, "*.index")))
        if len(indexes) == 1:
            return indexes[0][:-len(".index")]
        problems.append(f"{path}: a directory with {len(indexes) or 'no'} checkpoint .index "
                        "files; pass the checkpoint prefix (e.g. DIR/model.ckpt-1000000)")
        return None
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            path = path[:-len(suffix)]
    if ".data-" in os.path.basename(path):
        path = path[:path.rindex(".data-")]
    if not os.path.isfile(path + ".index"):
        what = "does not exist" if not os.path.exists(path) else "is not a TF checkpoint"
        problems.append(f"{path} {what} (no {os.path.basename(path)}.index); pass the "
                        "prefix of a TF1 checkpoint, e.g. DIR/model.ckpt-1000000")
        return None
    return path


def _read_tf1(path: str, problems: list):
    """(reader, {name: shape}) of a TF1 checkpoint, or (None, None)."""
    import tensorflow as tf

    prefix = tf1_prefix(path, problems)
    if prefix is None:
        return None, None, None
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = {name: tuple(shape)
                  for name, shape in reader.get_variable_to_shape_map().items()}
    except Exception as e:  # pylint: disable=broad-except
        problems.append(f"{prefix}: not a readable TF checkpoint "
                        f"({str(e).strip().splitlines()[0][:200]})")
        return None, None, None
    if any(name.endswith(".ATTRIBUTES/VARIABLE_VALUE") for name in shapes):
        problems.append(f"{prefix} is a TF2 object-based checkpoint, not a name-keyed TF1 one; "
                        "a model dir of this project is converted with --to, not --from")
        return None, None, None
    return prefix, reader, shapes


def _heads_from_config(path: Optional[str], problems: list) -> Optional[int]:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return int(json.load(f)["num_attention_heads"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        problems.append(f"{path}: no num_attention_heads in a BERT-style config JSON ({e})")
        return None


def read_google_tf1(path: str, generator_path: Optional[str], problems: list, *,
                    config: Optional[str] = None,
                    generator_config: Optional[str] = None) -> Optional[Source]:
    """A checkpoint of the reference code (Google's release, HFL's Chinese models).

    Args:
      path: checkpoint prefix or directory.
      generator_path: a second TF1 checkpoint holding `generator/*` and
        `generator_predictions/*` (when the first has none).
      config, generator_config: BERT-style config JSONs (HFL ships them) giving the head
        counts; without them heads are hidden // 64, the rule of every released model.
    """
    prefix, reader, shapes = _read_tf1(path, problems)
    if reader is None:
        return None
    weights = {n: s for n, s in shapes.items() if not layout.is_optimizer_state(n)}
    ignored = sorted(set(shapes) - set(weights))
    tensors = {name: reader.get_tensor(name) for name in weights}
    if generator_path:
        gen_prefix, gen_reader, gen_shapes = _read_tf1(generator_path, problems)
        if gen_reader is None:
            return None
        own = [n for n in weights if n.startswith((layout.GENERATOR + "/", layout.GEN_HEAD))]
        if own:
            problems.append(f"{prefix} already holds the generator ({own[0]}, ...); drop "
                            "--generator_input")
        for name in gen_shapes:
            if layout.is_optimizer_state(name):
                continue
            value = gen_reader.get_tensor(name)
            if name.startswith((layout.GENERATOR + "/", layout.GEN_HEAD)):
                tensors[name] = value
            elif name in tensors and name.startswith(layout.EMBEDDINGS):
                _check_same(name, tensors[name], value, gen_prefix, problems)
            else:
                problems.append(f"{gen_prefix}: unexpected variable {name} in a generator "
                                "checkpoint")
    heads = _heads_from_config(config, problems)
    gen_heads = _heads_from_config(generator_config, problems)
    if any(name.startswith(layout.GENERATOR_EMBEDDINGS + "/") for name in tensors):
        problems.append(
            f"{prefix} has {layout.GENERATOR_EMBEDDINGS}/*: the reference's "
            "untied_generator_embeddings option (the generator's own embedding block at its "
            "hidden width) is not supported here; only tied embeddings convert from TF1")
        return None
    arch = layout.infer_architecture({n: np.shape(v) for n, v in tensors.items()},
                                     num_heads=heads, generator_num_heads=gen_heads,
                                     problems=problems)
    if arch is None:
        return None
    notes = []
    if heads is None:
        notes.append(f"{arch.discriminator.num_heads} attention heads assumed for hidden size "
                     f"{arch.discriminator.hidden_size} (hidden // 64, true of every released "
                     "ELECTRA); pass --config=CONFIG.json with num_attention_heads if yours "
                     "differs: a wrong count gives wrong outputs")
    return Source(tensors=tensors, arch=arch, vocab_path=_beside(prefix, "vocab.txt"),
                  ignored=ignored, notes=notes)


def _check_same(name: str, ours, theirs, where: str, problems: list) -> None:
    if np.shape(ours) != np.shape(theirs):
        problems.append(f"{where}: {name} has shape {list(np.shape(theirs))} but the "
                        f"discriminator's has {list(np.shape(ours))}: the generator is from a "
                        "different model")
    elif not np.allclose(ours, theirs, rtol=0, atol=1e-6):
        diff = float(np.max(np.abs(np.asarray(ours) - np.asarray(theirs))))
        problems.append(f"{where}: {name} differs from the discriminator's (max |diff| "
                        f"{diff:.3g}); a generator trained with this discriminator shares its "
                        "embeddings: it is from a different model (or one trained with separate "
                        "embeddings: then pass --embedding_sharing=untied)")


# --- HuggingFace ---------------------------------------------------------------------------

def _hf_dir(path: str, flag: str, problems: list) -> Optional[str]:
    if os.path.isfile(path) and os.path.basename(path) in (
            huggingface.WEIGHTS, huggingface.CONFIG, "pytorch_model.bin"):
        path = os.path.dirname(path) or "."
    if not os.path.isdir(path):
        problems.append(f"{flag}={path} is not a directory; pass a HuggingFace model "
                        "directory (config.json + model.safetensors)")
        return None
    return path


def read_huggingface(path: str, generator_path: Optional[str], problems: list, *,
                     untied: bool = False) -> Optional[Source]:
    """An `ElectraForPreTraining` (or `ElectraModel`) directory, and optionally the matching
    `ElectraForMaskedLM` generator directory. With `untied`, the generator keeps its own
    embeddings (a model trained with `untied` or `gdes` sharing); else they must equal the
    discriminator's."""
    directory = _hf_dir(path, "--input", problems)
    if directory is None:
        return None
    config = huggingface.read_config(directory, problems)
    tensors = huggingface.read_tensors(directory, problems)
    if config is None or tensors is None:
        return None
    archs = config.get("architectures") or ["ElectraForPreTraining"]
    if archs[0] in huggingface.GENERATOR_ARCHS:
        problems.append(f"--input={path} is a generator ({archs[0]}); pass the discriminator "
                        "(ElectraForPreTraining) as --input and this as --generator_input")
        return None
    gen_config = gen_tensors = None
    if generator_path:
        gen_dir = _hf_dir(generator_path, "--generator_input", problems)
        if gen_dir is None:
            return None
        gen_config = huggingface.read_config(gen_dir, problems)
        gen_tensors = huggingface.read_tensors(gen_dir, problems)
        if gen_config is None or gen_tensors is None:
            return None
        gen_archs = gen_config.get("architectures") or ["ElectraForMaskedLM"]
        if gen_archs[0] not in huggingface.GENERATOR_ARCHS:
            problems.append(f"--generator_input={generator_path} is {gen_archs[0]}, not "
                            "ElectraForMaskedLM (a generator)")
            return None
        for key in ("vocab_size", "embedding_size", "max_position_embeddings",
                    "type_vocab_size"):
            if gen_config.get(key) != config.get(key):
                problems.append(
                    f"--generator_input has {key}={gen_config.get(key)} but --input has "
                    f"{config.get(key)}: the generator is from a different model")
    try:
        arch = huggingface.architecture(config, gen_config)
    except (KeyError, TypeError, ValueError) as e:
        problems.append(f"{directory}/config.json: missing or bad size key ({e})")
        return None
    arch.untied_generator_embeddings = bool(untied and gen_tensors is not None)
    arch.discriminator_head = (archs[0] != "ElectraModel"
                               or "discriminator_predictions.dense.weight" in tensors)
    display = {}
    reference = huggingface.to_reference(tensors, arch, "discriminator",
                                         f"{directory}", problems, display)
    if gen_tensors is not None:
        gen_reference = huggingface.to_reference(gen_tensors, arch, "generator",
                                                 generator_path, problems, display)
        for name, value in gen_reference.items():
            if name in reference:
                _check_same(name, reference[name], value, generator_path, problems)
            else:
                reference[name] = value
        lm_weight = gen_tensors.get("generator_lm_head.weight")
        word = gen_tensors.get("electra.embeddings.word_embeddings.weight")
        if lm_weight is not None and word is not None and (
                np.shape(lm_weight) != np.shape(word) or not np.allclose(lm_weight, word)):
            problems.append(f"{generator_path}: generator_lm_head.weight is not tied to the "
                            "word embeddings, which ELECTRA's generator requires")
    lower_case = None
    tokenizer_config = _beside(directory + os.sep, "tokenizer_config.json")
    if tokenizer_config:
        try:
            with open(tokenizer_config, encoding="utf-8") as f:
                lower_case = json.load(f).get("do_lower_case")
        except (OSError, ValueError):
            pass
    hyper = {"hidden_dropout": float(config.get("hidden_dropout_prob", 0.1)),
             "attention_dropout": float(config.get("attention_probs_dropout_prob", 0.1)),
             "initializer_range": float(config.get("initializer_range", 0.02)),
             "layer_norm_epsilon": float(config.get("layer_norm_eps", 1e-12))}
    return Source(tensors=reference, arch=arch,
                  vocab_path=_beside(directory + os.sep, "vocab.txt"),
                  lower_case=lower_case if isinstance(lower_case, bool) else None,
                  hyper=hyper, display_names=display)


# --- keras-hub -----------------------------------------------------------------------------

def backbone_entries(backbone) -> dict:
    """Reference name -> variable of a keras-hub `ElectraBackbone` (its pooler has no
    counterpart in ELECTRA and is left out)."""
    entries = layout.embedding_entries(
        layout.EMBEDDINGS, backbone.token_embedding, backbone.position_embedding,
        backbone.segment_embedding, backbone.embeddings_layer_norm)
    projection = getattr(backbone, "embeddings_projection", None)
    if projection is not None:
        entries[f"{layout.DISCRIMINATOR}/embeddings_project/kernel"] = projection.kernel
        entries[f"{layout.DISCRIMINATOR}/embeddings_project/bias"] = projection.bias
    for i, layer in enumerate(backbone.transformer_layers):
        entries.update(layout.transformer_layer_entries(
            f"{layout.DISCRIMINATOR}/encoder/layer_{i}", layer))
    return entries


def read_keras_hub(path: str, problems: list) -> Optional[Source]:
    """A keras-hub `ElectraBackbone` preset directory (config.json, model.weights.h5,
    tokenizer.json and its vocabulary). It holds the discriminator's encoder only."""
    import keras_hub

    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        problems.append(f"--input={path} is not a keras-hub preset directory (config.json, "
                        "model.weights.h5, tokenizer.json)")
        return None
    try:
        backbone = keras_hub.models.ElectraBackbone.from_preset(path)
    except Exception as e:  # pylint: disable=broad-except
        problems.append(f"{path}: not a loadable keras-hub ElectraBackbone preset "
                        f"({str(e).strip().splitlines()[0][:200]})")
        return None
    tokens = lower_case = None
    try:
        tokenizer = keras_hub.models.ElectraTokenizer.from_preset(path)
        tokens, lower_case = list(tokenizer.get_vocabulary()), bool(tokenizer.lowercase)
    except Exception:  # pylint: disable=broad-except
        pass  # --vocab then required; said by the caller
    entries = backbone_entries(backbone)
    reference = layout.read(entries)
    heads = int(backbone.num_heads)
    arch = layout.Architecture(
        vocab_size=int(backbone.vocab_size), embedding_size=int(backbone.embedding_dim),
        max_position_embeddings=int(backbone.max_sequence_length),
        type_vocab_size=int(backbone.num_segments),
        discriminator=layout.Network(int(backbone.hidden_dim), int(backbone.num_layers), heads,
                                     int(backbone.intermediate_dim)),
        generator=None, discriminator_head=False)
    return Source(tensors=reference, arch=arch, tokens=tokens, lower_case=lower_case,
                  hyper={"hidden_dropout": float(backbone.dropout),
                         "attention_dropout": float(backbone.dropout)})
