"""A self-describing model directory: `config.yaml`, `vocab.txt`, checkpoints, metrics.

`prepare_model_dir` makes one for a run (or checks that a resumed run agrees with it);
`load_pretrainer` / `load_discriminator` rebuild the trained models from one, with nothing
else needed.
"""

from __future__ import annotations

import os
import shutil

from electra_tf import config as config_lib

CONFIG_FILE = "config.yaml"
VOCAB_FILE = "vocab.txt"

# Keys whose change would make the checkpoint's variables (or the data they were trained on)
# no longer fit: a resumed run may change anything else (train_steps, learning rate, logging).
SHAPE_KEYS = (
    "model.vocab_size", "model.embedding_size", "model.hidden_size", "model.num_layers",
    "model.num_heads", "model.intermediate_size", "model.max_position_embeddings",
    "model.type_vocab_size", "model.embedding_sharing",
    "generator.hidden_fraction", "generator.num_layers",
    "objective.kind", "optimizer.name", "training.grad_accum_steps",
    "data.max_seq_length", "data.lower_case",
)


class ModelDirError(ValueError):
    """The model directory is missing something or disagrees with the run (one line)."""


def _get(cfg, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def load_model_dir_config(model_dir: str) -> config_lib.ElectraConfig:
    """Reads `model_dir/config.yaml`.

    Args:
      model_dir: a directory written by `electra_tf.train`.
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise ModelDirError(
            f"{model_dir!r} has no {CONFIG_FILE}; pass a model_dir written by electra_tf.train")
    return config_lib.load_config(path)


def special_token_ids(tokens: list[str]) -> dict:
    """Ids of [PAD], [CLS], [SEP], [MASK] in a vocabulary, as ElectraPretrainer kwargs.

    Args:
      tokens: the vocabulary (token per id).
    """
    from electra_tf.text import vocab as vocab_lib

    ids = vocab_lib.special_ids(tokens)  # found by token, so BERT-style vocabs work too
    return {key: ids[key] for key in ("pad_id", "cls_id", "sep_id", "mask_id")}


def prepare_model_dir(model_dir: str, cfg: config_lib.ElectraConfig, vocab: str | None,
                      *, write: bool = True):
    """Creates or checks a model directory; returns (cfg, vocab tokens).

    The vocabulary is copied to `model_dir/vocab.txt` on the first run (later runs may omit
    it) and `cfg.model.vocab_size` is set to its size. On resume the run's config must agree
    with the saved one on every key in `SHAPE_KEYS`; the saved config is then replaced by the
    run's (so a longer `train_steps` is recorded).

    Args:
      model_dir: the run directory (created if missing).
      cfg: the resolved config of this run (modified in place: `model.vocab_size`).
      vocab: path of a vocab file, or None to use the one already in `model_dir`.
      write: False on non-chief workers: check only, write nothing.
    """
    from electra_tf.text import vocab as vocab_lib

    os.makedirs(model_dir, exist_ok=True)
    saved_vocab = os.path.join(model_dir, VOCAB_FILE)
    if vocab is None:
        if not os.path.isfile(saved_vocab):
            raise ModelDirError(
                f"--vocab is required: {model_dir!r} has no {VOCAB_FILE} yet; pass the "
                "vocabulary the training data was built with")
        vocab = saved_vocab
    tokens = vocab_lib.load_vocab(vocab)
    if os.path.isfile(saved_vocab) and os.path.abspath(vocab) != os.path.abspath(saved_vocab):
        saved = vocab_lib.load_vocab(saved_vocab)
        if vocab_lib.vocab_hash(saved) != vocab_lib.vocab_hash(tokens):
            raise ModelDirError(
                f"--vocab={vocab} (hash {vocab_lib.vocab_hash(tokens)[:12]}) differs from "
                f"{saved_vocab} (hash {vocab_lib.vocab_hash(saved)[:12]}) this run resumes; "
                "use the same vocabulary or a new --model_dir")
    cfg.model.vocab_size = len(tokens)

    saved_cfg_path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.isfile(saved_cfg_path):
        saved_cfg = load_model_dir_config(model_dir)
        for key in SHAPE_KEYS:
            if _get(saved_cfg, key) != _get(cfg, key):
                raise ModelDirError(
                    f"{saved_cfg_path} has {key}={_get(saved_cfg, key)!r} but this run asks "
                    f"for {_get(cfg, key)!r}; a resumed run cannot change it: use a new "
                    "--model_dir or the saved value")
    if write:
        if os.path.abspath(vocab) != os.path.abspath(saved_vocab):
            tmp = f"{saved_vocab}.tmp-{os.getpid()}"
            shutil.copyfile(vocab, tmp)
            os.replace(tmp, saved_vocab)
        config_lib.save_config(cfg, saved_cfg_path)
    return cfg, tokens


def build_pretrainer(cfg: config_lib.ElectraConfig, tokens: list[str]):
    """Constructs an ElectraPretrainer for `cfg` and builds all its variables.

    Args:
      cfg: the model's config.
      tokens: its vocabulary (for the special token ids).
    """
    import tensorflow as tf
    from electra_tf.modeling.pretrainer import ElectraPretrainer

    model = ElectraPretrainer(cfg, **special_token_ids(tokens))
    # Keras 3 creates variables when layers are built; a checkpoint can only be restored into
    # existing variables (no deferred restoration), so run one tiny forward pass first.
    seq = cfg.data.max_seq_length
    ids = special_token_ids(tokens)
    token_ids = tf.concat([[[ids["cls_id"]]], tf.fill([1, seq - 2], 5 % len(tokens)),
                           [[ids["sep_id"]]]], axis=1)
    batch = {"token_ids": tf.cast(token_ids, tf.int32),
             "segment_ids": tf.zeros([1, seq], tf.int32),
             "padding_mask": tf.ones([1, seq], tf.int32)}
    model.compute_losses(batch, tf.constant([0, 0], tf.int64), training=False)
    return model


def load_pretrainer(model_dir: str):
    """Rebuilds the ElectraPretrainer of a training run with its latest weights.

    Args:
      model_dir: a directory written by `electra_tf.train` (config.yaml, vocab.txt, ckpt-N).

    Example:
      >>> pretrainer = electra_tf.load_pretrainer("runs/tiny")
      >>> logits = pretrainer.discriminator(batch)
    """
    import tensorflow as tf
    from electra_tf.text import vocab as vocab_lib

    cfg = load_model_dir_config(model_dir)
    vocab_path = os.path.join(model_dir, VOCAB_FILE)
    if not os.path.isfile(vocab_path):
        raise ModelDirError(f"{model_dir!r} has no {VOCAB_FILE}; it is not a complete model_dir")
    latest = tf.train.latest_checkpoint(model_dir)
    if latest is None:
        raise ModelDirError(
            f"{model_dir!r} has no checkpoint yet; train first (electra_tf.train)")
    model = build_pretrainer(cfg, vocab_lib.load_vocab(vocab_path))
    status = tf.train.Checkpoint(model=model).read(latest)
    # Every model variable must come from the checkpoint (optimizer, RNG etc. are not needed).
    status.assert_existing_objects_matched().expect_partial()
    return model


def load_discriminator(model_dir: str):
    """The trained discriminator of a run: inputs token_ids, segment_ids, padding_mask ->
    per-token logits [B, S].

    Args:
      model_dir: a directory written by `electra_tf.train`.
    """
    return load_pretrainer(model_dir).discriminator
