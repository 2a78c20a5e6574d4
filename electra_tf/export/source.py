"""What an export starts from: a trained model and its tokenizer.

`load_export_source(model_dir)` opens a model dir through `electra_tf.model_dir` (which
checks that the config, vocabulary and checkpoint agree, raising `ModelDirError`), checks
the export's own choices (`ExportError`), and restores the discriminator alone.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional


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


def load_export_source(model_dir: str, *, vocab: Optional[str] = None,
                       max_seq_length: Optional[int] = None) -> ExportSource:
    """Loads the discriminator of a training run with the tokenizer of its vocabulary.

    Args:
      model_dir: a directory written by `electra_tf.train` (config.yaml, vocab.txt, ckpt-N).
      vocab: a vocab.txt to serve with instead of `model_dir/vocab.txt` (must be the same
        vocabulary: same size as the model's table, same hash as any recorded one).
      max_seq_length: length of the raw-text signatures and TFLite models; None uses the
        config's `data.max_seq_length`. At most `model.max_position_embeddings`.

    Returns:
      An `ExportSource`.

    Raises:
      ModelDirError: no model dir / config / vocabulary / checkpoint, or a vocabulary that
        does not fit the model.
      ExportError: a sequence length the model cannot take.
    """
    from electra_tf import model_dir as model_dir_lib  # pylint: disable=import-outside-toplevel
    from electra_tf.text.tokenizer import ElectraTokenizer  # pylint: disable=import-outside-toplevel

    opened = model_dir_lib.open_model_dir(model_dir, vocab=vocab)
    cfg = opened.config
    limit = cfg.model.max_position_embeddings
    length = cfg.data.max_seq_length if max_seq_length is None else int(max_seq_length)
    if not 3 <= length <= limit:
        raise ExportError(f"--max_seq_length={length} is outside 3..{limit} "
                          f"(model.max_position_embeddings in "
                          f"{os.path.join(model_dir, model_dir_lib.CONFIG_FILE)}); pick a "
                          "length in that range")
    tokenizer = ElectraTokenizer(opened.vocab_path, lower_case=cfg.data.lower_case)
    model = model_dir_lib.load_discriminator(model_dir)
    return ExportSource(model=model, tokenizer=tokenizer, max_seq_length=length,
                        max_position_embeddings=limit, model_dir=model_dir)
