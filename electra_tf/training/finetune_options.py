"""What a fine-tuning run is given: its options, the recipe's defaults, and the checks of
the model it starts from and of the directory it writes.

`FinetuneOptions` are the binary's flags; `default_learning_rate` and
`default_layerwise_decay` fill in the reference's recipe by model size (docs/architecture.md,
"Fine-tuning"). `_resolve_model` turns --init / --config / --vocab / --override into the
model's config and vocabulary, refusing overrides of what the pretrained checkpoint fixes
(`model_dir.SHAPE_KEYS`); `_check_output_dir` makes sure a resumed run is the same run and
that no other run's directory is overwritten. `training/finetuning.py` runs the result.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

from electra_tf import config as config_lib
from electra_tf import model_dir as model_dir_lib

DEFAULT_MAX_SEQ_LENGTH = 128


class FinetuneError(ValueError):
    """The fine-tuning run cannot start as asked (one line: what, where, what to do)."""


@dataclasses.dataclass
class FinetuneOptions:
    """Everything a fine-tuning run is given (the binary's flags).

    Args:
      task: a GLUE task name or classification | regression | tagging.
      data_dir: the task's files.
      output_dir: where the run writes (resumable).
      init: a pretraining (or converted, or fine-tuned) model dir, or "none" for random
        initialisation.
      config: YAML of the model size for `init="none"` (default: ELECTRA-Small's sizes);
        ignored otherwise.
      vocab: vocab.txt; required for `init="none"`, checked against the model dir otherwise.
      overrides: config overrides (`section.key=value`): on the model config for
        `init="none"`; on the config.yaml of `init` otherwise, where they may not change the
        pretrained model's shape (`model_dir.SHAPE_KEYS`, `model.vocab_size` included).
      epochs, learning_rate, layerwise_lr_decay: None picks the reference default for the
        task and model size.
      reference_layerwise_decay: the reference's extra decay factor below the head.
      seeds: one run per seed; results report each and the median.
      max_seq_length, batch_size, warmup_fraction, weight_decay: the recipe.
      text_column, text_pair_column, label_column, train_file, dev_file, header: how to
        read the user's own files (see `data/tasks.py`).
      strategy, num_gpus, all_reduce_alg, tpu, mixed_precision: as for pretraining.
      checkpoint_every: save every this many steps within an epoch too (0: epoch ends).
      show_progress: a progress bar with ETA per epoch.
      max_train_examples: train on this many examples (a fixed random subset, the same for
        every seed and init), e.g. for quick comparisons; None: all.
    """

    task: str
    data_dir: str
    output_dir: str
    init: str = "none"
    config: Optional[str] = None
    vocab: Optional[str] = None
    overrides: Sequence[str] = ()
    epochs: Optional[int] = None
    learning_rate: Optional[float] = None
    layerwise_lr_decay: Optional[float] = None
    reference_layerwise_decay: bool = False
    seeds: Sequence[int] = (1,)
    max_seq_length: Optional[int] = None
    batch_size: int = 32
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    text_column: Optional[str] = None
    text_pair_column: Optional[str] = None
    label_column: Optional[str] = None
    train_file: Optional[str] = None
    dev_file: Optional[str] = None
    header: str = "auto"
    strategy: str = "one_device"
    num_gpus: int = 0
    all_reduce_alg: Optional[str] = None
    tpu: Optional[str] = None
    mixed_precision: str = "none"
    checkpoint_every: int = 0
    show_progress: bool = True
    max_train_examples: Optional[int] = None


def default_learning_rate(cfg) -> float:
    """The paper's fine-tuning rate by model size: 3e-4 Small, 1e-4 Base, 5e-5 Large."""
    hidden = cfg.model.hidden_size
    return 3e-4 if hidden <= 256 else 1e-4 if hidden <= 768 else 5e-5


def default_layerwise_decay(cfg) -> float:
    """0.8 for Small and Base, 0.9 for Large (24 layers or wider than 768)."""
    return 0.9 if cfg.model.num_layers >= 24 or cfg.model.hidden_size > 768 else 0.8


def _resolve_model(options: FinetuneOptions):
    """(cfg, tokens, vocab path, init info) from --init / --config / --vocab, all checked."""
    from electra_tf.text import vocab as vocab_lib

    if options.init and options.init != "none":
        opened = model_dir_lib.open_model_dir(options.init)
        m = opened.config.model
        if m.embedding_sharing == "gdes" and opened.config.objective.kind == "electra":
            raise FinetuneError(
                f"--init={options.init} was pretrained with model.embedding_sharing=gdes, "
                "whose discriminator table is the generator's plus a delta; fine-tuning from "
                "it is not supported yet: pretrain with tied or untied embeddings")
        if options.vocab:
            tokens = vocab_lib.load_vocab(options.vocab)
            if vocab_lib.vocab_hash(tokens) != vocab_lib.vocab_hash(opened.tokens):
                raise FinetuneError(
                    f"--vocab={options.vocab} differs from {opened.vocab_path} of --init="
                    f"{options.init} (hash {vocab_lib.vocab_hash(tokens)[:12]} vs "
                    f"{vocab_lib.vocab_hash(opened.tokens)[:12]}); drop --vocab or pass the "
                    "vocabulary the model was pretrained with")
        cfg = _override_init_config(opened.config, options)
        return cfg, opened.tokens, opened.vocab_path, \
            model_dir_lib.read_finetune_info(options.init)
    if not options.vocab:
        raise FinetuneError("--vocab is required with --init=none (the vocabulary to "
                            "tokenize with); or pass --init=MODEL_DIR of a pretraining run")
    tokens = vocab_lib.load_vocab(options.vocab)
    for text in options.overrides:
        path, value = config_lib.parse_override(text, "--override")
        if path == ["model", "vocab_size"] and value != len(tokens):
            raise FinetuneError(
                f"--override {text}: model.vocab_size is set from the vocabulary, and "
                f"{options.vocab} has {len(tokens)} tokens; drop the override")
    overrides = list(options.overrides) + [f"model.vocab_size={len(tokens)}"]
    if options.config:
        cfg = config_lib.load_config(options.config, overrides)
    else:  # The config defaults are ELECTRA-Small's sizes.
        cfg = config_lib.from_dict({}, overrides, source="--override")
    return cfg, tokens, options.vocab, None


def _override_init_config(cfg, options: FinetuneOptions):
    """--init's config with --override applied; an override may not change the pretrained
    model's shape (model_dir.SHAPE_KEYS), which its checkpoint fixes, and one that would be
    ignored is refused rather than dropped silently."""
    if not options.overrides:
        return cfg
    changed = config_lib.from_dict(cfg.to_dict(), options.overrides, source="--override")
    for key in model_dir_lib.SHAPE_KEYS:
        section, name = key.split(".")
        before = getattr(getattr(cfg, section), name)
        after = getattr(getattr(changed, section), name)
        if before != after:
            raise FinetuneError(
                f"--override sets {key}={after!r} but the model of --init={options.init} has "
                f"{key}={before!r} (its config.yaml), which its checkpoint fixes; drop the "
                "override")
    return changed


# What a resumed run may not change (anything else but the seeds would make the restored
# step, schedule or data order mean something else).
_RESUME_KEYS = ("task", "kind", "labels", "init", "max_seq_length", "train_file", "dev_file",
                "epochs", "learning_rate", "layerwise_lr_decay", "reference_layerwise_decay",
                "batch_size", "train_examples", "warmup_fraction", "weight_decay",
                "mixed_precision")


def _check_output_dir(output_dir: str, info: dict, init: str) -> None:
    """A resumed run must be the same run; a pretraining model dir is never overwritten."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FinetuneError(f"--output_dir={output_dir} is a file; pass a directory")
    if init != "none" and os.path.abspath(output_dir) == os.path.abspath(init):
        raise FinetuneError(f"--output_dir is --init ({init}); write the fine-tuned model to a "
                            "new directory")
    saved = model_dir_lib.read_finetune_info(output_dir) if os.path.isdir(output_dir) else None
    if saved is None:
        for name in (model_dir_lib.CONFIG_FILE, "checkpoint"):
            if os.path.exists(os.path.join(output_dir, name)):
                raise FinetuneError(
                    f"--output_dir={output_dir} holds another run ({name}, no "
                    f"{model_dir_lib.FINETUNE_FILE}); pass a new directory")
        return
    for key in _RESUME_KEYS:
        if saved.get(key) != info.get(key):
            raise FinetuneError(
                f"{os.path.join(output_dir, model_dir_lib.FINETUNE_FILE)} has {key}="
                f"{saved.get(key)!r} but this run has {info.get(key)!r}; use a new "
                "--output_dir to fine-tune differently")
