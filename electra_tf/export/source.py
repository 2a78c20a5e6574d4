"""What an export starts from: a trained model and its tokenizer.

`load_export_source(model_dir)` opens a model dir through `electra_tf.model_dir` (which
checks that the config, vocabulary and checkpoint agree, raising `ModelDirError`), checks
the export's own choices (`ExportError`), and restores the model to serve: the
discriminator alone for a pretraining dir, the task model for a fine-tuned dir (one with a
`finetune.json`, written by `electra_tf.finetune`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

# The task kinds a fine-tuned dir may declare (electra_tf.modeling.task_models.TASK_KINDS),
# repeated here so that the binary can refuse a bad finetune.json before TensorFlow loads.
FINETUNED_KINDS = ("classification", "regression", "tagging")


class ExportError(ValueError):
    """An export cannot be made from these inputs (one-line message naming the path or flag)."""


@dataclasses.dataclass
class ExportSource:
    """A model ready to export, with everything the serving graph needs.

    Args:
      model: Keras model with inputs `token_ids`, `segment_ids`, `padding_mask` (int32 [B, S])
        and either per-token logits [B, S] (the discriminator) or `{"logits": ...}` of a
        fine-tuned task model ([B, C], [B, 1] or [B, S, C]).
      tokenizer: the `ElectraTokenizer` of the vocabulary the model was trained with.
      max_seq_length: sequence length of the raw-text signatures and of the TFLite models.
      max_position_embeddings: the longest sequence the model accepts (`serve_ids`).
      model_dir: where it was loaded from (None when built in Python).
      task: what the export serves (`electra_tf.export.serving.TASKS`): the kind of a
        fine-tuned dir, or None to let `serving.detect_task` decide (pretraining dirs).
      labels: the label names in class-id order (classification, tagging); empty otherwise.
      finetune: the fine-tuned dir's `finetune.json` (None for pretraining dirs).

    Example:

    >>> source = ExportSource(model=None, tokenizer=None, max_seq_length=128,
    ...                       max_position_embeddings=512, task="classification",
    ...                       labels=("负面", "positive"))
    >>> source.labels[0], source.finetune is None
    ('负面', True)
    """

    model: Any
    tokenizer: Any
    max_seq_length: int
    max_position_embeddings: int
    model_dir: Optional[str] = None
    task: Optional[str] = None
    labels: tuple = ()
    finetune: Optional[dict] = None


def check_finetune_info(info: dict, path: str) -> tuple:
    """Checks the export-relevant part of a `finetune.json`; returns (kind, labels).

    Args:
      info: the parsed file (`electra_tf.model_dir.read_finetune_info`).
      path: where it was read from (named in the message).

    Raises:
      ExportError: an unknown kind, labels that are not a list of strings, no labels for a
        classifier or tagger, or a `max_seq_length` that is not an integer.

    Example:

    >>> check_finetune_info({"kind": "classification", "labels": ["负面", "positive"],
    ...                      "max_seq_length": 128}, "finetune.json")
    ('classification', ('负面', 'positive'))
    >>> check_finetune_info({"kind": "ranking", "labels": [], "max_seq_length": 128},
    ...                     "finetune.json")
    Traceback (most recent call last):
    ...
    electra_tf.export.source.ExportError: finetune.json has kind='ranking'; ...
    """
    kind, labels = info.get("kind"), info.get("labels")
    if kind not in FINETUNED_KINDS:
        raise ExportError(f"{path} has kind={kind!r}; expected one of "
                          f"{', '.join(FINETUNED_KINDS)}: rerun electra_tf.finetune")
    if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
        raise ExportError(f"{path} has labels={labels!r}; expected a list of label names in "
                          "id order: rerun electra_tf.finetune")
    if kind != "regression" and not labels:
        raise ExportError(f"{path} lists no labels for a {kind} model; list the label names "
                          "in id order (rerun electra_tf.finetune)")
    length = info.get("max_seq_length")
    if not isinstance(length, int) or isinstance(length, bool):
        raise ExportError(f"{path} has max_seq_length={length!r}; expected an integer: rerun "
                          "electra_tf.finetune or pass --max_seq_length")
    return kind, tuple(labels) if kind != "regression" else ()


# Object path of the task head's bias in a fine-tuned checkpoint (`tf.train.Checkpoint(
# model=ElectraTaskModel)`, whose output layer is its `head` attribute).
_HEAD_BIAS_KEY = "model/head/bias/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_head_width(checkpoint: str) -> Optional[int]:
    """Outputs of the task head saved in a fine-tuned checkpoint, or None if it has none.

    Read from the checkpoint's index before the model is built, so that a finetune.json
    whose labels do not fit the checkpoint is refused with its own message rather than a
    restore error.

    Args:
      checkpoint: a checkpoint path prefix (`.../ckpt-N`).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    try:
        shapes = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, OSError, ValueError, IndexError):
        # A damaged checkpoint: the model dir's loader reports it (or falls back to an
        # intact older one, docs/architecture.md "The checkpoint"); nothing to compare here.
        return None
    shape = shapes.get(_HEAD_BIAS_KEY)
    return int(shape[0]) if shape else None


def load_export_source(model_dir: str, *, vocab: Optional[str] = None,
                       max_seq_length: Optional[int] = None) -> ExportSource:
    """Loads the model of a training or fine-tuning run with the tokenizer of its vocabulary.

    A dir with a `finetune.json` is a fine-tuned one: its task model (`load_task_model`) is
    exported with the kind and label names recorded there. Any other dir is a pretraining
    run: its discriminator is exported alone.

    Args:
      model_dir: a directory written by `electra_tf.train` or `electra_tf.finetune`
        (config.yaml, vocab.txt, ckpt-N, and finetune.json for fine-tuned ones).
      vocab: a vocab.txt to serve with instead of `model_dir/vocab.txt` (must be the same
        vocabulary: same size as the model's table, same hash as any recorded one).
      max_seq_length: length of the raw-text signatures and TFLite models; None uses
        finetune.json's `max_seq_length` (fine-tuned dirs) or the config's
        `data.max_seq_length`. At most `model.max_position_embeddings`.

    Returns:
      An `ExportSource`.

    Raises:
      ModelDirError: no model dir / config / vocabulary / checkpoint, or a vocabulary that
        does not fit the model.
      ExportError: a sequence length the model cannot take, or a finetune.json that does
        not describe the model.
    """
    from electra_tf import model_dir as model_dir_lib  # pylint: disable=import-outside-toplevel
    from electra_tf import model_loading  # pylint: disable=import-outside-toplevel
    from electra_tf.text.tokenizer import ElectraTokenizer  # pylint: disable=import-outside-toplevel

    # The checkpoint is chosen (and a damaged newest one skipped with one warning) by the
    # loader below, which opens the dir again: not here too, or the warning would repeat.
    opened = model_dir_lib.open_model_dir(model_dir, vocab=vocab, require_checkpoint=False)
    if opened.checkpoint is None:
        model_dir_lib.open_model_dir(model_dir, vocab=vocab)  # the loader's own refusal
    cfg = opened.config
    info = model_dir_lib.read_finetune_info(model_dir)
    info_path = os.path.join(model_dir, model_dir_lib.FINETUNE_FILE)
    kind, labels = check_finetune_info(info, info_path) if info is not None else (None, ())
    limit = cfg.model.max_position_embeddings
    if max_seq_length is not None:
        length, named = int(max_seq_length), f"--max_seq_length={int(max_seq_length)}"
    elif info is not None:
        length, named = info["max_seq_length"], \
            f"max_seq_length={info['max_seq_length']} in {info_path}"
    else:
        length, named = cfg.data.max_seq_length, f"--max_seq_length={cfg.data.max_seq_length}"
    if not 3 <= length <= limit:
        raise ExportError(f"{named} is outside 3..{limit} "
                          f"(model.max_position_embeddings in "
                          f"{os.path.join(model_dir, model_dir_lib.CONFIG_FILE)}); pick a "
                          "length in that range")
    tokenizer = ElectraTokenizer(opened.vocab_path, lower_case=cfg.data.lower_case)
    if info is None:
        model = model_loading.load_discriminator(model_dir, vocab=vocab)
    else:
        width = checkpoint_head_width(opened.checkpoint)
        wanted = len(labels) if kind != "regression" else 1
        if width is not None and width != wanted:
            raise ExportError(f"{info_path} lists {len(labels)} label names for a {kind} model "
                              f"but {opened.checkpoint} holds a head of {width} outputs; "
                              "export the dir electra_tf.finetune wrote, unchanged")
        model, _ = model_loading.load_task_model(model_dir, vocab=vocab)
        from electra_tf.export import serving  # pylint: disable=import-outside-toplevel

        # The head's width must agree with the names it is served with.
        labels = serving.label_names(model, kind, labels, where=info_path)
    return ExportSource(model=model, tokenizer=tokenizer, max_seq_length=length,
                        max_position_embeddings=limit, model_dir=model_dir, task=kind,
                        labels=labels, finetune=info)
