"""A model dir of this project -> HuggingFace or keras-hub (docs/architecture.md,
"Checkpoint conversion").

HuggingFace: the discriminator as an `ElectraForPreTraining` directory and, when the model
dir has one, the generator as an `ElectraForMaskedLM` directory (config.json,
model.safetensors, vocab.txt, tokenizer config). keras-hub: the discriminator's encoder as an
`ElectraBackbone` preset with its `ElectraTokenizer`. Each output is written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from electra_tf import files
from electra_tf.convert import huggingface, layout
from electra_tf.convert.importer import ConversionError, output_problem, read_conversion

TARGETS = ("huggingface", "keras_hub")


def architecture_of(cfg, *, generator: bool) -> layout.Architecture:
    """The `Architecture` of a model dir's config."""
    m = cfg.model
    gen = None
    if generator:
        gen = layout.Network(cfg.generator_hidden_size(), cfg.generator_num_layers(),
                             cfg.generator_num_heads(), cfg.generator_intermediate_size())
    return layout.Architecture(
        vocab_size=m.vocab_size, embedding_size=m.embedding_size,
        max_position_embeddings=m.max_position_embeddings, type_vocab_size=m.type_vocab_size,
        discriminator=layout.Network(m.hidden_size, m.num_layers, m.num_heads,
                                     m.intermediate_size),
        generator=gen, discriminator_head=cfg.objective.kind == "electra",
        untied_generator_embeddings=generator and m.embedding_sharing != "tied")


def _not_a_model_dir(model_dir: str) -> Optional[str]:
    """Why `model_dir` is a checkpoint to import rather than a model dir, if it is one."""
    if not os.path.isdir(model_dir) or os.path.isfile(os.path.join(model_dir, "config.yaml")):
        return None
    if os.path.isfile(os.path.join(model_dir, huggingface.CONFIG)):
        kind = "a HuggingFace or keras-hub model"
    elif any(name.endswith(".index") for name in os.listdir(model_dir)):
        kind = "a TF checkpoint"
    else:
        return None
    return (f"--model_dir={model_dir} holds {kind}, not a model dir of this project: import "
            "it with --from first (--from=google_tf1|huggingface|keras_hub --input=... "
            "--output=MODEL_DIR)")


def load_reference(model_dir: str, log=print):
    """(opened model dir, architecture, reference-named tensors) of a model dir."""
    from electra_tf import model_checkpoints, model_loading
    from electra_tf import model_dir as model_dir_lib

    problem = _not_a_model_dir(model_dir)
    if problem:
        raise ConversionError([problem])
    opened = model_dir_lib.open_model_dir(model_dir)
    if model_dir_lib.read_finetune_info(model_dir) is not None:
        raise ConversionError([f"{model_dir} holds a fine-tuned task model; convert the "
                               "pretrained model dir it came from, or serve it with "
                               "python -m electra_tf.export"])
    cfg = opened.config
    conversion = read_conversion(model_dir) or {}
    with_generator = cfg.objective.kind == "electra" and conversion.get("generator") != "none"
    trained = not model_checkpoints.is_weights_only(opened.checkpoint)
    for part in ("generator", "discriminator_head"):
        if conversion.get(part) == "random" and not trained:
            log(f"note: the {part.replace('_', ' ')} of {model_dir} was freshly initialised "
                "by the conversion and has not been trained since")
    if with_generator:
        model = model_loading.load_pretrainer(model_dir)
    else:
        model = model_loading.load_discriminator(model_dir)
    arch = architecture_of(cfg, generator=with_generator)
    entries = layout.model_entries(model)
    gdes_table = None
    if with_generator and cfg.model.embedding_sharing == "gdes":
        # The discriminator's table is the generator's plus a learned delta (no one variable).
        token = model.discriminator_embeddings.token_embedding
        gdes_table = np.asarray(token.source.embeddings.numpy() + token.delta.numpy())
    shapes = layout.expected_shapes(arch)
    tensors = layout.read({n: v for n, v in entries.items() if n in shapes}, shapes)
    if gdes_table is not None:
        tensors[f"{layout.EMBEDDINGS}/word_embeddings"] = gdes_table
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise ConversionError([f"{model_dir}: the model has no {name}" for name in missing])
    return opened, arch, tensors


def _check_output(path: Optional[str], flag: str, problems: list) -> None:
    if path:
        output_problem(path, flag, problems)


def _publish(outputs: dict) -> None:
    """Writes every output ({path: write(tmp_dir)}) under a temporary name, then renames
    them all; on any failure removes what it wrote, including outputs already renamed."""
    staged, published = [], []
    try:
        for output, write in outputs.items():
            parent = os.path.dirname(os.path.abspath(output))
            os.makedirs(parent, exist_ok=True)
            tmp = os.path.join(parent,
                               f".{os.path.basename(os.path.abspath(output))}.tmp-{os.getpid()}")
            files.remove_path(tmp)
            staged.append(tmp)
            os.makedirs(tmp)
            write(tmp)
        for tmp, output in zip(staged, outputs):
            if os.path.isdir(output):
                os.rmdir(output)  # empty (checked before any work)
            os.rename(tmp, output)
            published.append(output)
    except BaseException:
        for path in staged + published:
            files.remove_path(path)
        raise


def to_huggingface(model_dir: str, output: str, *, generator_output: Optional[str] = None,
                   log=print) -> dict:
    """Writes the discriminator (and the generator) of `model_dir` in HuggingFace layout.

    Returns:
      {"discriminator": output, "generator": generator_output or None}.
    """
    problems: list[str] = []
    _check_output(output, "--output", problems)
    _check_output(generator_output, "--generator_output", problems)
    if generator_output and os.path.abspath(generator_output) == os.path.abspath(output):
        problems.append("--generator_output must differ from --output")
    if problems:
        raise ConversionError(problems)
    opened, arch, tensors = load_reference(model_dir, log)
    if generator_output and arch.generator is None:
        raise ConversionError([f"--generator_output: {model_dir} has no generator (a "
                               "discriminator-only model dir); drop the flag"])
    m = opened.config.model
    pad_id = opened.tokens.index("[PAD]")

    def writer(network):
        def write(tmp):
            config = huggingface.config_dict(
                arch, network, dropout=m.hidden_dropout, initializer_range=m.initializer_range,
                layer_norm_epsilon=m.layer_norm_epsilon, pad_token_id=pad_id)
            files.atomic_write_text(os.path.join(tmp, huggingface.CONFIG),
                                    json.dumps(config, indent=2) + "\n")
            huggingface.write_weights(os.path.join(tmp, huggingface.WEIGHTS),
                                      huggingface.from_reference(tensors, arch, network))
            files.atomic_write_text(os.path.join(tmp, "vocab.txt"),
                                    "".join(t + "\n" for t in opened.tokens))
            for name, text in huggingface.tokenizer_files(
                    opened.tokens, opened.config.data.lower_case,
                    m.max_position_embeddings).items():
                files.atomic_write_text(os.path.join(tmp, name), text)
        return write

    outputs = {output: writer("discriminator")}
    if generator_output:
        outputs[generator_output] = writer("generator")
    _publish(outputs)
    log(f"wrote {output} ({'ElectraForPreTraining' if arch.discriminator_head else 'ElectraModel'})")
    if generator_output:
        log(f"wrote {generator_output} (ElectraForMaskedLM)")
    elif arch.generator is not None:
        log("note: the generator was not written; add --generator_output=DIR for it")
    return {"discriminator": output, "generator": generator_output}


def to_keras_hub(model_dir: str, output: str, *, seed: int = 0, log=print) -> dict:
    """Writes the discriminator's encoder of `model_dir` as a keras-hub `ElectraBackbone`
    preset with its `ElectraTokenizer`.

    What differs in keras-hub (README, "Checkpoints in and out"): `ElectraBackbone` uses the
    tanh approximation of GELU (ELECTRA uses the exact one) and adds a `pooled_output` dense
    that ELECTRA never trained (initialised here from `seed`); the `sequence_output` is the
    encoder's. The replaced-token head and the generator have no place in the preset.
    """
    import keras
    import keras_hub

    problems: list[str] = []
    _check_output(output, "--output", problems)
    if problems:
        raise ConversionError(problems)
    opened, arch, tensors = load_reference(model_dir, log)
    m = opened.config.model
    if m.layer_norm_epsilon != 1e-12:
        raise ConversionError([f"{model_dir}: model.layer_norm_epsilon is "
                               f"{m.layer_norm_epsilon}; keras-hub's ElectraBackbone fixes it "
                               "at 1e-12"])
    keras.utils.set_random_seed(seed)
    d = arch.discriminator
    backbone = keras_hub.models.ElectraBackbone(
        vocab_size=arch.vocab_size, num_layers=d.num_layers, num_heads=d.num_heads,
        hidden_dim=d.hidden_size, embedding_dim=arch.embedding_size,
        intermediate_dim=d.intermediate_size, dropout=m.hidden_dropout,
        max_sequence_length=arch.max_position_embeddings, num_segments=arch.type_vocab_size,
        dtype="float32")
    from electra_tf.convert.sources import backbone_entries

    layout.assign(backbone_entries(backbone), tensors)
    lower_case = opened.config.data.lower_case
    # Uncased here also strips accents (BERT's uncased normalisation); keras-hub's
    # WordPieceTokenizer does that only when asked.
    tokenizer = keras_hub.models.ElectraTokenizer(
        vocabulary=list(opened.tokens), lowercase=lower_case, strip_accents=lower_case)

    def write(tmp):
        backbone.save_to_preset(tmp)
        tokenizer.save_to_preset(tmp)

    _publish({output: write})
    log(f"wrote {output} (keras-hub ElectraBackbone preset: approximate GELU and an untrained "
        "pooler; use sequence_output)")
    return {"preset": output}
