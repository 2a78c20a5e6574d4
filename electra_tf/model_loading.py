"""Building and loading the models of a model dir: the pretrainer, the discriminator alone,
a fine-tuned task model.

Each loader opens the dir (`model_dir.open_model_dir`: config, vocabulary and checkpoint
checked first), builds the model from its config alone and restores the newest intact
checkpoint (`model_checkpoints._restore`, which falls back from a damaged one). `model_dir`
re-exports every name here, lazily.
"""

from __future__ import annotations

from typing import Optional

from electra_tf import config as config_lib
from electra_tf.model_checkpoints import _restore
from electra_tf.model_dir import (FINETUNE_FILE, ModelDirError, open_model_dir, read_config,
                                  read_finetune_info)


def special_token_ids(tokens: list[str]) -> dict:
    """Ids of [PAD], [CLS], [SEP], [MASK] in a vocabulary, as ElectraPretrainer kwargs.

    Args:
      tokens: the vocabulary (token per id).
    """
    from electra_tf.text import vocab as vocab_lib

    ids = vocab_lib.special_ids(tokens)  # found by token, so BERT-style vocabs work too
    return {key: ids[key] for key in ("pad_id", "cls_id", "sep_id", "mask_id")}


def build_pretrainer(cfg: config_lib.ElectraConfig, tokens: list[str]):
    """Constructs an ElectraPretrainer for `cfg` (all its variables exist on return).

    Args:
      cfg: the model's config.
      tokens: its vocabulary (for the special token ids).
    """
    from electra_tf.modeling.pretrainer import ElectraPretrainer

    return ElectraPretrainer(cfg, **special_token_ids(tokens))


def load_pretrainer(model_dir: str, *, vocab: Optional[str] = None):
    """Rebuilds the ElectraPretrainer of a training run with its latest weights.

    Args:
      model_dir: a directory written by `electra_tf.train` (config.yaml, vocab.txt, ckpt-N).
      vocab: a vocab.txt to use instead of `model_dir/vocab.txt` (it must fit the model;
        see `open_model_dir`).
    """
    opened = open_model_dir(model_dir, vocab=vocab)
    model = build_pretrainer(opened.config, opened.tokens)
    _restore(model, opened.path, opened.checkpoint, "pretrainer")
    return model


def load_discriminator(model_dir: str, *, vocab: Optional[str] = None):
    """The trained discriminator of a run, built alone (no generator is constructed).

    Inputs `token_ids`, `segment_ids`, `padding_mask` (int32 [B, S]) -> per-token
    replaced-token logits float32 [B, S]; `.encoder` gives the sequence output [B, S, H].
    For a run with the `mlm` objective (no replaced-token head) this is the encoder.

    Args:
      model_dir: a directory written by `electra_tf.train`.
      vocab: a vocab.txt to use instead of `model_dir/vocab.txt` (it must fit the model;
        see `open_model_dir`).
    """
    import keras
    import tensorflow as tf

    from electra_tf.modeling.discriminator import ElectraDiscriminator
    from electra_tf.modeling.encoder import ElectraEncoder

    opened = open_model_dir(model_dir, vocab=vocab)
    cfg = opened.config
    if cfg.model.embedding_sharing == "gdes" and cfg.objective.kind == "electra":
        # The discriminator's word table is the generator's plus a delta: it cannot exist
        # without the generator's table, so the pretrainer is rebuilt around it.
        model = build_pretrainer(cfg, opened.tokens)
        _restore(model, opened.path, opened.checkpoint, "pretrainer")
        return model.discriminator
    # Built under the same name scope as inside the pretrainer, and restored through the
    # same object path (`model.discriminator`), so the checkpoint's variables fit exactly.
    with keras.name_scope("discriminator"):
        if cfg.objective.kind == "mlm":
            discriminator = ElectraEncoder.from_electra_config(cfg, "discriminator")
        else:
            discriminator = ElectraDiscriminator.from_electra_config(cfg)
    holder = tf.Module()
    holder.discriminator = discriminator
    if cfg.objective.kind == "mlm":
        holder.discriminator_encoder = discriminator
    _restore(holder, opened.path, opened.checkpoint, "discriminator")
    return discriminator


def build_task_model_from_dir(model_dir: str, cfg=None, info=None):
    """The (untrained) `ElectraTaskModel` a fine-tuned model dir describes.

    Args:
      model_dir: a fine-tuned model dir.
      cfg: its config (read from the dir if None).
      info: its `finetune.json` (read from the dir if None).
    """
    from electra_tf.modeling.task_models import build_task_model

    cfg = cfg or read_config(model_dir)
    info = info or read_finetune_info(model_dir)
    return build_task_model(cfg, info["kind"], max(1, len(info["labels"])))


def load_task_model(model_dir: str, *, vocab: Optional[str] = None):
    """A fine-tuned model with its best weights; returns (model, finetune info).

    Args:
      model_dir: a directory written by `electra_tf.finetune`.
      vocab: a vocab.txt to use instead of `model_dir/vocab.txt` (it must fit the model;
        see `open_model_dir`).
    """
    opened = open_model_dir(model_dir, vocab=vocab)
    info = read_finetune_info(model_dir)
    if info is None:
        raise ModelDirError(f"{model_dir} has no {FINETUNE_FILE}: it is a pretraining model "
                            "dir; fine-tune it first (python -m electra_tf.finetune)")
    model = build_task_model_from_dir(model_dir, opened.config, info)
    _restore(model, opened.path, opened.checkpoint, "fine-tuned model")
    return model, info
