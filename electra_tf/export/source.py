"""What an export starts from: a trained model, its tokenizer and the checks that they agree.

`load_export_source(model_dir)` reads a model dir written by `electra_tf.train`
(`config.yaml`, `vocab.txt`, `ckpt-N`), refuses one whose vocabulary does not fit the model,
and restores the discriminator. Every refusal is an `ExportError` with one line: what is
wrong, where, what to do.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any, Optional

# Files in a model dir that may record the vocabulary's fingerprint (a copy of the data
# sidecar, or run metadata): when present, their `vocab_hash` must match vocab.txt.
_HASH_SIDECARS = ("dataset.json", "run.json", "vocab.json")


class ExportError(ValueError):
    """An export cannot be made from these inputs (one-line message naming the path or flag)."""


@dataclasses.dataclass
class ExportSource:
    """A model ready to export, with everything the serving graph needs.

    Args:
      model: Keras model with inputs `token_ids`, `segment_ids`, `padding_mask` (int32 [B, S])
        and either per-token logits [B, S] (the discriminator) or `logits` [B, num_labels]
        (a fine-tuned classifier).
      tokenizer: the `ElectraTokenizer` of the vocabulary the model was trained with.
      max_seq_length: sequence length of the raw-text signatures and of the TFLite models.
      max_position_embeddings: the longest sequence the model accepts (`serve_ids`).
      model_dir: where it was loaded from (None when built in Python).
    """

    model: Any
    tokenizer: Any
    max_seq_length: int
    max_position_embeddings: int
    model_dir: Optional[str] = None


def check_vocab_matches(tokenizer, *, vocab_size: int, where: str,
                        vocab_hash: Optional[str] = None, hash_where: str = "") -> None:
    """Raises ExportError unless the tokenizer's vocabulary is the model's.

    Args:
      tokenizer: an `ElectraTokenizer`.
      vocab_size: rows of the model's word embedding table (`model.vocab_size`).
      where: the config that states `vocab_size` (named in the message).
      vocab_hash: a recorded fingerprint of the training vocabulary, if any.
      hash_where: the file that recorded `vocab_hash`.
    """
    if tokenizer.vocab_size != vocab_size:
        raise ExportError(
            f"vocabulary has {tokenizer.vocab_size} tokens but {where} says model.vocab_size="
            f"{vocab_size}: export with the vocab.txt the model was trained with")
    if vocab_hash and vocab_hash != tokenizer.vocab_hash:
        raise ExportError(
            f"vocabulary hash {tokenizer.vocab_hash[:12]} differs from {vocab_hash[:12]} "
            f"recorded in {hash_where}: export with the vocab.txt the model was trained with")


def _recorded_vocab_hashes(model_dir: str):
    for name in _HASH_SIDECARS:
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            raise ExportError(f"{path} is not readable JSON; fix or remove it") from None
        if isinstance(data, dict) and data.get("vocab_hash"):
            yield path, str(data["vocab_hash"])


def load_export_source(model_dir: str, *, vocab: Optional[str] = None,
                       max_seq_length: Optional[int] = None) -> ExportSource:
    """Loads the discriminator of a training run and checks its vocabulary.

    Args:
      model_dir: a directory written by `electra_tf.train` (config.yaml, vocab.txt, ckpt-N).
      vocab: a vocab.txt to serve with instead of `model_dir/vocab.txt` (must be the same
        vocabulary: same size as the model's table, same hash as any recorded one).
      max_seq_length: length of the raw-text signatures and TFLite models; None uses the
        config's `data.max_seq_length`. At most `model.max_position_embeddings`.

    Returns:
      An `ExportSource`.

    Raises:
      ExportError: no model dir / config / vocabulary / checkpoint, a vocabulary that does not
        fit the model, or a sequence length the model cannot take.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from electra_tf import config as config_lib  # pylint: disable=import-outside-toplevel
    from electra_tf.text.tokenizer import ElectraTokenizer  # pylint: disable=import-outside-toplevel
    from electra_tf.text.vocab import VocabError  # pylint: disable=import-outside-toplevel

    if not os.path.isdir(model_dir):
        raise ExportError(f"--model_dir={model_dir} is not a directory; pass the --model_dir "
                          "of a training run")
    config_path = os.path.join(model_dir, "config.yaml")
    if not os.path.isfile(config_path):
        raise ExportError(f"{model_dir} has no config.yaml; pass the --model_dir of a training "
                          "run (written by electra_tf.train)")
    try:
        cfg = config_lib.load_config(config_path)
    except config_lib.ConfigError as e:
        raise ExportError(str(e)) from None
    vocab_path = vocab or os.path.join(model_dir, "vocab.txt")
    if not os.path.isfile(vocab_path):
        raise ExportError(f"{vocab_path} does not exist; the model dir is incomplete, or pass "
                          "--vocab=PATH of the vocabulary the model was trained with")
    # A checkpoint is looked for before anything heavy is built.
    if tf.train.latest_checkpoint(model_dir) is None:
        found = sorted(glob.glob(os.path.join(model_dir, "ckpt-*.index")))
        hint = (f" (found {os.path.basename(found[-1])} but no 'checkpoint' file)"
                if found else "")
        raise ExportError(f"{model_dir} has no checkpoint{hint}; train first "
                          "(python -m electra_tf.train) or pass the right --model_dir")
    try:
        tokenizer = ElectraTokenizer(vocab_path, lower_case=cfg.data.lower_case)
    except VocabError as e:
        raise ExportError(str(e)) from None
    check_vocab_matches(tokenizer, vocab_size=cfg.model.vocab_size, where=config_path)
    for path, recorded in _recorded_vocab_hashes(model_dir):
        check_vocab_matches(tokenizer, vocab_size=cfg.model.vocab_size, where=config_path,
                            vocab_hash=recorded, hash_where=path)
    if vocab is not None:
        saved = os.path.join(model_dir, "vocab.txt")
        if os.path.isfile(saved):
            saved_tok = ElectraTokenizer(saved, lower_case=cfg.data.lower_case)
            check_vocab_matches(tokenizer, vocab_size=cfg.model.vocab_size, where=config_path,
                                vocab_hash=saved_tok.vocab_hash, hash_where=saved)

    limit = cfg.model.max_position_embeddings
    length = int(max_seq_length or cfg.data.max_seq_length)
    if not 3 <= length <= limit:
        raise ExportError(f"--max_seq_length={length} is outside 3..{limit} "
                          f"(model.max_position_embeddings in {config_path}); pick a length "
                          "in that range")

    from electra_tf.training.model_dir import load_discriminator  # pylint: disable=import-outside-toplevel
    model = load_discriminator(model_dir)
    return ExportSource(model=model, tokenizer=tokenizer, max_seq_length=length,
                        max_position_embeddings=limit, model_dir=model_dir)
