"""The model directory: the one place that finds, checks and writes a run's directory.

A model dir is self-describing (docs/architecture.md, "The model dir"):

    config.yaml      the resolved `ElectraConfig` of the run (`model.vocab_size` included)
    vocab.txt        the vocabulary the data was built with
    checkpoint       TF's index of the newest checkpoint
    ckpt-N.*         checkpoints (model, optimizer, step, RNG, dropout seeds, input state)
    metrics.jsonl    one JSON line per train log and evaluation (+ TensorBoard events)
    .lock            the lock a writing run holds (`lock_model_dir`; its process id)

Pretraining creates one (`prepare_model_dir`); export, fine-tuning and conversion open one
(`open_model_dir`); a fine-tuned one also holds `finetune.json` (`read_finetune_info`). A run
writing one holds its lock (`lock_model_dir`). Every refusal is a `ModelDirError` with one
line: what is wrong, where, what to do.

Three neighbours hold the rest, and everything they offer is importable from here too:
`run_dir_guard.py` (the lock, writability, full disks, leftovers), `model_checkpoints.py`
(finding a dir's checkpoints, falling back from a damaged one) and `model_loading.py`
(`load_pretrainer`, `load_discriminator`, `load_task_model`: the trained models rebuilt from
a dir with nothing else needed; re-exported lazily, as that module imports this one).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf._lazy import lazy_exports
# Finding and checking checkpoints lives in its own module; re-exported here.
from electra_tf.model_checkpoints import (_require_checkpoint,  # noqa: F401
                                          checkpoint_candidates, checkpoint_problem, is_damage,
                                          is_weights_only, latest_checkpoint, warn_damaged)
# The lock, writability and leftover handling live in their own module; re-exported here.
from electra_tf.run_dir_guard import (LOCK_FILE, ModelDirError, ModelDirLock,  # noqa: F401
                                      check_writable_dir, describe_error, is_disk_full,
                                      lock_model_dir, output_error, remove_stale_temporaries)

# Building and loading models from a model dir: `model_loading.py`, which imports this module,
# so its names are re-exported lazily (PEP 562).
_EXPORTS = {
    "special_token_ids": "electra_tf.model_loading",
    "build_pretrainer": "electra_tf.model_loading",
    "load_pretrainer": "electra_tf.model_loading",
    "load_discriminator": "electra_tf.model_loading",
    "build_task_model_from_dir": "electra_tf.model_loading",
    "load_task_model": "electra_tf.model_loading",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
    "training.seed_group_size", "data.max_seq_length", "data.lower_case",
)

# What a converted model dir (tools/convert_checkpoint.py) may still change before its
# first training run: its checkpoint holds weights only, so only the keys that shape them
# (and the tokenizer's casing) are fixed.
WEIGHT_KEYS = tuple(key for key in SHAPE_KEYS if key not in (
    "optimizer.name", "training.grad_accum_steps", "training.seed_group_size",
    "data.max_seq_length"))
CONVERSION_FILE = "conversion.json"

# Files in a model dir that may record the vocabulary's fingerprint (a copy of the data
# sidecar, or run metadata): when present, their `vocab_hash` must match vocab.txt.
_HASH_SIDECARS = ("dataset.json", "run.json", "vocab.json")


@dataclasses.dataclass
class ModelDir:
    """An opened, checked model directory.

    Args:
      path: the directory.
      config: its `ElectraConfig` (from config.yaml).
      vocab_path: the vocabulary file to use (model_dir/vocab.txt unless overridden).
      tokens: the vocabulary, token per id.
      checkpoint: path prefix of the newest checkpoint (None if it has none yet).
    """

    path: str
    config: config_lib.ElectraConfig
    vocab_path: str
    tokens: list
    checkpoint: Optional[str]


def _get(cfg, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def read_config(model_dir: str) -> config_lib.ElectraConfig:
    """Reads `model_dir/config.yaml`.

    Args:
      model_dir: a directory written by `electra_tf.train`.
      vocab: a vocab.txt to use instead of `model_dir/vocab.txt` (it must fit the model;
        see `open_model_dir`).
    """
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"model dir {model_dir!r} is not a directory; pass the --model_dir "
                            "of a training run")
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise ModelDirError(
            f"{model_dir!r} has no {CONFIG_FILE}; pass a model_dir written by electra_tf.train")
    return config_lib.load_config(path)


def _converted_untrained(model_dir: str) -> Optional[dict]:
    """The conversion record of a converted model dir not trained yet, else None."""
    path = os.path.join(model_dir, CONVERSION_FILE)
    if not os.path.isfile(path):
        return None
    # The newest readable checkpoint (a damaged newest one is skipped, as restores do).
    readable = [p for p in checkpoint_candidates(model_dir) if checkpoint_problem(p) is None]
    try:
        if not readable or not is_weights_only(readable[0]):
            return None
    except Exception:  # pylint: disable=broad-except
        return None  # unreadable after all: the restore reports it
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _recorded_vocab_hashes(model_dir: str):
    for name in _HASH_SIDECARS:
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            raise ModelDirError(f"{path} is not readable JSON; fix or remove it") from None
        if isinstance(data, dict) and data.get("vocab_hash"):
            yield path, str(data["vocab_hash"])


def check_vocab_fits(tokens: list[str], cfg: config_lib.ElectraConfig, *, vocab_path: str,
                     where: str) -> None:
    """Raises ModelDirError unless `tokens` has as many entries as the model's word table.

    Args:
      tokens: the vocabulary.
      cfg: the model's config.
      vocab_path: where the vocabulary came from (named in the message).
      where: the config file that states `model.vocab_size` (named in the message).
    """
    if len(tokens) != cfg.model.vocab_size:
        raise ModelDirError(
            f"{vocab_path} has {len(tokens)} tokens but {where} says model.vocab_size="
            f"{cfg.model.vocab_size}: use the vocab.txt the model was trained with")


def open_model_dir(model_dir: str, *, vocab: Optional[str] = None,
                   require_checkpoint: bool = True) -> ModelDir:
    """Opens a trained model dir and checks that its parts agree.

    Checks, in order, before anything heavy is built: the directory and its config exist;
    the vocabulary exists, is valid, and has `model.vocab_size` tokens; its hash equals any
    recorded one (`dataset.json` copies) and, when `vocab` overrides it, the saved
    vocab.txt's; a checkpoint exists.

    Args:
      model_dir: a directory written by `electra_tf.train` (or the checkpoint converter).
      vocab: a vocab.txt to use instead of `model_dir/vocab.txt` (must be the same
        vocabulary).
      require_checkpoint: refuse a model dir without a checkpoint.

    Raises:
      ModelDirError, ConfigError, VocabError: one line naming the file and the fix.
    """
    from electra_tf.text import vocab as vocab_lib

    cfg = read_config(model_dir)
    config_path = os.path.join(model_dir, CONFIG_FILE)
    saved_vocab = os.path.join(model_dir, VOCAB_FILE)
    vocab_path = vocab or saved_vocab
    if not os.path.isfile(vocab_path):
        raise ModelDirError(f"{vocab_path} does not exist; the model dir is incomplete, or pass "
                            "--vocab=PATH of the vocabulary the model was trained with")
    tokens = vocab_lib.load_vocab(vocab_path)
    check_vocab_fits(tokens, cfg, vocab_path=vocab_path, where=config_path)
    digest = vocab_lib.vocab_hash(tokens)
    recorded = list(_recorded_vocab_hashes(model_dir))
    if vocab is not None and os.path.isfile(saved_vocab):
        recorded.append((saved_vocab, vocab_lib.vocab_hash(vocab_lib.load_vocab(saved_vocab))))
    for path, expected in recorded:
        if expected != digest:
            raise ModelDirError(
                f"vocabulary hash {digest[:12]} of {vocab_path} differs from {expected[:12]} "
                f"recorded in {path}: use the vocab.txt the model was trained with")
    checkpoint = _require_checkpoint(model_dir) if require_checkpoint else latest_checkpoint(
        model_dir)
    return ModelDir(path=model_dir, config=cfg, vocab_path=vocab_path, tokens=tokens,
                    checkpoint=checkpoint)


def prepare_model_dir(model_dir: str, cfg: config_lib.ElectraConfig, vocab: str | None,
                      *, write: bool = True):
    """Checks a run against its model dir (new or resumed); with `write`, records it there.

    The vocabulary is copied to `model_dir/vocab.txt` on the first run (later runs may omit
    it) and `cfg.model.vocab_size` is set to its size. On resume the run's config must agree
    with the saved one on every key in `SHAPE_KEYS`; the saved config is then replaced by the
    run's (so a longer `train_steps` is recorded). Call it with `write=False` first and
    with `write=True` only once every other check of the run has passed, so that a refused
    run leaves nothing behind.

    Args:
      model_dir: the run directory (created when writing).
      cfg: the resolved config of this run (modified in place: `model.vocab_size`).
      vocab: path of a vocab file, or None to use the one already in `model_dir`.
      write: False: check only, write nothing (also what non-chief workers do).

    Returns:
      (cfg, vocabulary tokens).
    """
    from electra_tf.text import vocab as vocab_lib

    check_writable_dir(model_dir)
    finetuned = os.path.join(model_dir, FINETUNE_FILE)
    if os.path.isfile(finetuned):
        # Its checkpoint holds a task model, not a pretrainer: resuming would fail only
        # after the saved config had been replaced.
        raise ModelDirError(f"{model_dir} holds a fine-tuned model ({finetuned}); pretrain "
                            "into another --model_dir")
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
    converted = _converted_untrained(model_dir) if os.path.isdir(model_dir) else None
    if converted is not None and converted.get("generator") == "none":
        raise ModelDirError(
            f"{model_dir} holds a discriminator converted without a generator (from "
            f"{converted.get('source', '?')}); pretraining needs one: convert again with "
            "--generator_input=GENERATOR or --init_generator=random (fine-tuning and export "
            "take this dir as it is)")
    if os.path.isfile(saved_cfg_path):
        saved_cfg = config_lib.load_config(saved_cfg_path)
        for key in (WEIGHT_KEYS if converted is not None else SHAPE_KEYS):
            if key == "generator.hidden_fraction":
                # What matters is the width it gives (0.333333 and 1/3 give the same).
                same = saved_cfg.generator_hidden_size() == cfg.generator_hidden_size()
            else:
                same = _get(saved_cfg, key) == _get(cfg, key)
            if not same:
                what = ("the converted model's sizes cannot change" if converted is not None
                        else "a resumed run cannot change it")
                raise ModelDirError(
                    f"{saved_cfg_path} has {key}={_get(saved_cfg, key)!r} but this run asks "
                    f"for {_get(cfg, key)!r}; {what}: use a new --model_dir or the saved "
                    "value")
    if write:
        # Atomic writes: a full disk or a permission error leaves no half-written file.
        target = model_dir
        try:
            os.makedirs(model_dir, exist_ok=True)
            if os.path.abspath(vocab) != os.path.abspath(saved_vocab):
                with open(vocab, "rb") as f:
                    data = f.read()
                target = saved_vocab
                files.atomic_write_bytes(saved_vocab, data)
            target = saved_cfg_path
            config_lib.save_config(cfg, saved_cfg_path)
        except OSError as e:
            raise output_error(e, path=target) from None
    return cfg, tokens


# --- fine-tuned model dirs -------------------------------------------------------------------

FINETUNE_FILE = "finetune.json"


def read_finetune_info(model_dir: str) -> Optional[dict]:
    """The task description of a fine-tuned model dir (`finetune.json`), or None.

    Holds `task`, `kind` (classification | regression | tagging), `labels` (names in id
    order), `max_seq_length` and how it was trained.

    Args:
      model_dir: a directory written by `electra_tf.finetune` (or any model dir).
    """
    path = os.path.join(model_dir, FINETUNE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        raise ModelDirError(f"{path} is not readable JSON; rerun electra_tf.finetune") from None
    for key in ("task", "kind", "labels", "max_seq_length"):
        if key not in info:
            raise ModelDirError(f"{path} has no {key!r}; rerun electra_tf.finetune")
    return info
