"""A model dir's checkpoints: which there are, whether each is intact, restoring from them.

`checkpoint_candidates` lists a dir's checkpoints newest first (by TF's `checkpoint` index, or
by number when that index is unreadable). `checkpoint_problem` finds a missing or truncated
checkpoint cheaply, and `_restore` restores a model's variables from the newest one that is
intact, skipping a damaged one with a warning for the next older one (in a fine-tuned dir,
then the kept seed's copy of the kept weights); docs/architecture.md, "The checkpoint". Every
refusal is a one-line `ModelDirError`. `model_dir` re-exports the public names.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Optional

from electra_tf.run_dir_guard import ModelDirError, describe_error


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
