"""The model directory: the one place that finds, checks, writes and loads a run's directory.

A model dir is self-describing (docs/architecture.md, "The model dir"):

    config.yaml      the resolved `ElectraConfig` of the run (`model.vocab_size` included)
    vocab.txt        the vocabulary the data was built with
    checkpoint       TF's index of the newest checkpoint
    ckpt-N.*         checkpoints (model, optimizer, step, RNG, dropout seeds, input state)
    metrics.jsonl    one JSON line per train log and evaluation (+ TensorBoard events)
    .lock            the lock a writing run holds (`lock_model_dir`; its process id)

Pretraining creates one (`prepare_model_dir`); export, fine-tuning and conversion open one
(`open_model_dir`), and `load_pretrainer` / `load_discriminator` rebuild the trained models
from one with nothing else needed, falling back from a damaged newest checkpoint to an older
one. A run writing one holds its lock (`lock_model_dir`). Every refusal is a `ModelDirError`
with one line: what is wrong, where, what to do.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from typing import Optional

from electra_tf import config as config_lib
from electra_tf import files
# The lock, writability and leftover handling live in their own module; re-exported here.
from electra_tf.run_dir_guard import (LOCK_FILE, ModelDirError, ModelDirLock,  # noqa: F401
                                      check_writable_dir, describe_error, is_disk_full,
                                      lock_model_dir, output_error, remove_stale_temporaries)

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


def special_token_ids(tokens: list[str]) -> dict:
    """Ids of [PAD], [CLS], [SEP], [MASK] in a vocabulary, as ElectraPretrainer kwargs.

    Args:
      tokens: the vocabulary (token per id).
    """
    from electra_tf.text import vocab as vocab_lib

    ids = vocab_lib.special_ids(tokens)  # found by token, so BERT-style vocabs work too
    return {key: ids[key] for key in ("pad_id", "cls_id", "sep_id", "mask_id")}


def latest_checkpoint(model_dir: str) -> Optional[str]:
    """Path prefix of the newest complete checkpoint in `model_dir`, or None.

    Args:
      model_dir: the run directory.
    """
    import tensorflow as tf

    return tf.train.latest_checkpoint(model_dir)


_CKPT_NUMBER = re.compile(r"-(\d+)$")


def is_weights_only(path: str) -> bool:
    """Whether a checkpoint holds a model's weights and nothing else (no step counter, no
    optimizer): what the converter writes as ckpt-0.

    Args:
      path: a checkpoint prefix.
    """
    import tensorflow as tf

    names = [name for name, _ in tf.train.list_variables(path)]
    return not any(name.startswith(("step/", "optimizer/")) for name in names)


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


def checkpoint_candidates(model_dir: str) -> list[str]:
    """Checkpoint prefixes of `model_dir`, newest first: what a restore may fall back to.

    The order is TF's `checkpoint` index (the order of the saves); when that file exists but
    cannot be parsed, every `ckpt-N` with an `.index` file, highest N first.

    Args:
      model_dir: the run directory.
    """
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(model_dir)
    if state is not None:
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
            paths.append(state.model_checkpoint_path)
        # TF has already joined relative entries to `model_dir`; an absolute entry that is
        # not there (a directory moved or copied) is looked for beside the index.
        paths = [_here(model_dir, p) for p in paths if p]
        return list(reversed(paths))
    if not os.path.isfile(os.path.join(model_dir, "checkpoint")):
        return []
    found = glob.glob(os.path.join(model_dir, "ckpt-*.index"))
    prefixes = [f[:-len(".index")] for f in found]
    prefixes = [p for p in prefixes if _CKPT_NUMBER.search(p)]
    return sorted(prefixes, key=lambda p: int(_CKPT_NUMBER.search(p).group(1)), reverse=True)


def _here(model_dir: str, path: str) -> str:
    local = os.path.join(model_dir, os.path.basename(path))
    if not os.path.exists(path + ".index") and os.path.exists(local + ".index"):
        return local
    return path


def _fallback_candidates(model_dir: str) -> list[str]:
    """`checkpoint_candidates`, then, in a fine-tuned model dir, the kept seed's own copy of
    the kept weights (`seed-N/best/`), from which the dir's checkpoint was written."""
    candidates = checkpoint_candidates(model_dir)
    try:
        with open(os.path.join(model_dir, "results.json"), encoding="utf-8") as f:
            seed = json.load(f)["kept_seed"]
        seed_dir = os.path.join(model_dir, f"seed-{seed}")
        with open(os.path.join(seed_dir, "state.json"), encoding="utf-8") as f:
            name = os.path.basename(json.load(f)["best"]["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError):
        return candidates
    best = os.path.join(seed_dir, "best", name)
    return candidates + [best] if candidates and best not in candidates else candidates


def checkpoint_problem(path: str) -> Optional[str]:
    """What makes the checkpoint at `path` unreadable, or None when it looks intact.

    Cheap: its index is parsed and its object graph (written last, at the end of the data)
    is read, which finds missing and truncated files; a flipped byte elsewhere is found by
    the CRC check of the restore itself (the loaders and the trainer fall back then too).

    Args:
      path: a checkpoint prefix (`.../ckpt-N`).
    """
    import tensorflow as tf

    if not os.path.isfile(path + ".index"):
        return "its .index file is missing"
    try:
        reader = tf.train.load_checkpoint(path)
        reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    except Exception as e:  # pylint: disable=broad-except  # any failure means unreadable
        return describe_error(e)
    return None


def is_damage(error: BaseException) -> bool:
    """Whether an exception from reading a checkpoint means its files are damaged."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    return isinstance(error, (IndexError, tf.errors.OpError, DecodeError, EOFError))


def warn_damaged(path: str, problem: str, fallback: Optional[str]) -> None:
    """Logs (one warning line) that the checkpoint at `path` is skipped for `fallback`."""
    from absl import logging

    instead = f"falling back to the older {fallback}" if fallback else "no older one is left"
    logging.warning("checkpoint %s is damaged (%s); %s", path, problem, instead)


def _require_checkpoint(model_dir: str) -> str:
    """The newest checkpoint that looks intact (older ones after a warning), or an error."""
    candidates = _fallback_candidates(model_dir)
    if not candidates:
        found = sorted(glob.glob(os.path.join(model_dir, "ckpt-*.index")))
        hint = (f" (found {os.path.basename(found[-1])} but no 'checkpoint' file)"
                if found else "")
        raise ModelDirError(f"{model_dir} has no checkpoint{hint}; train first "
                            "(python -m electra_tf.train) or pass the right --model_dir")
    problems = []
    for i, path in enumerate(candidates):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        problems.append(f"{os.path.basename(path)}: {problem}")
        warn_damaged(path, problem, candidates[i + 1] if i + 1 < len(candidates) else None)
    raise ModelDirError(f"every checkpoint in {model_dir} is damaged ({'; '.join(problems)}); "
                        "restore the model dir from a copy or train again")


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


def build_pretrainer(cfg: config_lib.ElectraConfig, tokens: list[str]):
    """Constructs an ElectraPretrainer for `cfg` (all its variables exist on return).

    Args:
      cfg: the model's config.
      tokens: its vocabulary (for the special token ids).
    """
    from electra_tf.modeling.pretrainer import ElectraPretrainer

    return ElectraPretrainer(cfg, **special_token_ids(tokens))


def _restore_one(root, checkpoint: str, what: str) -> None:
    import tensorflow as tf

    status = tf.train.Checkpoint(model=root).read(checkpoint)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ModelDirError(f"{checkpoint} does not hold every variable of the {what} "
                            f"({str(e).splitlines()[0][:200]}); was it written by another "
                            "model configuration?") from None
    status.expect_partial()


def _restore(root, model_dir: str, checkpoint: str, what: str) -> str:
    """Restores `root`'s variables from the model part of a training checkpoint; every
    variable of `root` must come from it (optimizer, RNG and input state are skipped).

    A damaged checkpoint (docs/architecture.md, "The checkpoint") is skipped with a warning
    for the next older one of `model_dir` (in a fine-tuned dir, then the kept seed's copy of
    the weights); every variable is assigned again by the one that succeeds. Returns the
    checkpoint restored.
    """
    candidates = _fallback_candidates(model_dir)
    if checkpoint in candidates:
        candidates = candidates[candidates.index(checkpoint):]
    else:
        candidates = [checkpoint]
    problems = []
    for i, path in enumerate(candidates):
        problem = checkpoint_problem(path)
        if problem is None:
            try:
                _restore_one(root, path, what)
                return path
            except Exception as e:  # pylint: disable=broad-except
                if not is_damage(e):
                    raise
                problem = describe_error(e)
        problems.append(f"{os.path.basename(path)}: {problem}")
        warn_damaged(path, problem, candidates[i + 1] if i + 1 < len(candidates) else None)
    raise ModelDirError(f"every checkpoint in {model_dir} is damaged ({'; '.join(problems)}); "
                        "restore the model dir from a copy or train again")


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
