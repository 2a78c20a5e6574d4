"""Training checkpoints: model, optimizer, step, RNG, dropout seeds and the input iterator.

Exact resume needs every piece of state that influences the next step:
- model and optimizer variables (slots, iteration count, loss scale, gradient accumulators);
- `step` and the masking `tf.random.Generator` (masks are drawn from it each step);
- the Keras dropout seed state. Keras 3 keeps it in `SeedGenerator.state` variables that
  `tf.train.Checkpoint(model=...)` does NOT reach (SeedGenerator is not a trackable object),
  so a resumed run would replay the first dropout masks. They are added explicitly here as
  `dropout_seeds`, in `model.variables` order, which is fixed by the model's construction;
- the tf.data iterator (shuffle buffers and file positions), so the same examples follow.
  tf.distribute's own distributed iterators are not trackable in TF 2.20 (tf.train.Checkpoint
  rejects them), so the trainer reads each worker's pipeline with a plain tf.data iterator
  (trackable) and hands its batches to the replicas itself. With several workers each
  pipeline's state differs, so each worker saves its iterator to `model_dir/worker-<i>/`.

Writes never leave a corrupt latest checkpoint: TF writes the shard data and `.index` under a
temporary prefix and renames them, and `CheckpointManager` rewrites the small `checkpoint`
index file (atomically, `file_io.atomic_write_string_to_file`) only after that write returns.
A crash mid-save therefore leaves `checkpoint` pointing at the previous complete save. A save
that fails (a full disk) removes what it wrote before raising, so no `ckpt-N_temp/` or
unlisted `ckpt-N.*` is left visible; what a killed process left is removed by the next run
(`model_dir.remove_stale_temporaries`, under the model dir's lock).

A damaged newest checkpoint (truncated, or failing its CRC) is not a dead end: `restore`
falls back to the next older one with a warning naming the damaged one (docs/architecture.md,
"The checkpoint").
"""

from __future__ import annotations

import glob
import os
import shutil

import tensorflow as tf

from electra_tf import model_checkpoints
from electra_tf import model_dir as model_dir_lib


class CheckpointError(ValueError):
    """A checkpoint cannot be restored or written (one line: which, why, what to do)."""


def dropout_seed_states(model) -> list:
    """The Keras `SeedGenerator` state variables of `model` (dropout RNG), in a fixed order.

    Args:
      model: a built keras.Model.
    """
    # SeedGenerator names its variable "seed_generator_state" (keras/src/random/seed_generator.py).
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class TrainCheckpoint:
    """A `tf.train.Checkpoint` + `CheckpointManager` over everything a run needs to resume.

    Under multi-worker training every worker must take part in a save (variables may be
    synchronised collectively); only the chief's copy is kept in `model_dir`, the others
    write to a private directory that is deleted straight away (the TF multi-worker guide's
    pattern). All workers restore from the chief's checkpoints.

    Args:
      model_dir: run directory; checkpoints are `model_dir/ckpt-<step>.*` plus `checkpoint`.
      max_to_keep: how many checkpoints to keep.
      is_chief: whether this process owns `model_dir`.
      worker_index: this worker's index (0 is the chief).
      worker_objects: per-worker state (the input iterator) when several workers train;
        saved by every worker to `model_dir/worker-<i>/ckpt-<step>`. None: single worker,
        everything is in the main checkpoint.
      **objects: the trackable objects to save (model, optimizer, step, rng, iterator ...).
    """

    def __init__(self, model_dir: str, *, max_to_keep: int, is_chief: bool = True,
                 worker_index: int = 0, worker_objects: dict | None = None, **objects):
        self.model_dir = model_dir
        self.is_chief = is_chief
        self.checkpoint = tf.train.Checkpoint(**objects)
        self._model = objects.get("model")
        # Set by `restore` when the newest checkpoint held converted weights only.
        self.initialised_from = None
        self._directory = model_dir if is_chief else os.path.join(
            model_dir, f".worker-{worker_index}-tmp")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._directory, max_to_keep=max_to_keep, checkpoint_name="ckpt")
        self._last_good = None
        self.worker_manager = None
        if worker_objects:
            self.worker_manager = tf.train.CheckpointManager(
                tf.train.Checkpoint(**worker_objects),
                os.path.join(model_dir, f"worker-{worker_index}"),
                max_to_keep=max_to_keep, checkpoint_name="ckpt")

    def latest(self) -> str | None:
        """Path prefix of the newest good checkpoint (restored or saved by this run, else the
        newest complete one in `model_dir`), or None."""
        return self._last_good or tf.train.latest_checkpoint(self.model_dir)

    def restore(self) -> str | None:
        """Restores the newest readable checkpoint if there is one; returns its path or None.

        A damaged checkpoint is skipped, with a warning naming it, for the next older one.

        Raises:
          CheckpointError: every checkpoint is damaged, or one does not fit this run.
        """
        candidates = model_checkpoints.checkpoint_candidates(self.model_dir)
        problems = []
        for i, path in enumerate(candidates):
            problem = model_checkpoints.checkpoint_problem(path)
            if problem is None:
                try:
                    if self._model is not None and model_checkpoints.is_weights_only(path):
                        # A converted checkpoint (tools/convert_checkpoint.py): the model's
                        # weights and nothing else. Training starts from them at step 0
                        # with a fresh optimizer; it is not a resume.
                        self._initialise_from(path)
                        return None
                    self._restore_from(path)
                    self._last_good = path
                    return path
                except (AssertionError, ValueError) as e:
                    if isinstance(e, CheckpointError):
                        raise
                    raise CheckpointError(
                        f"{path} does not fit this run ({str(e).strip().splitlines()[0][:200]}"
                        "); it was written by another model or configuration: pass another "
                        "model dir") from None
                except Exception as e:  # pylint: disable=broad-except
                    if not model_checkpoints.is_damage(e):
                        raise
                    problem = model_dir_lib.describe_error(e)
            problems.append(f"{os.path.basename(path)}: {problem}")
            model_checkpoints.warn_damaged(
                path, problem, candidates[i + 1] if i + 1 < len(candidates) else None)
        if problems:
            raise CheckpointError(
                f"every checkpoint in {self.model_dir} is damaged ({'; '.join(problems)}); "
                "restore the model dir from a copy, or move its ckpt-* and checkpoint files "
                "out to start over")
        return None

    def _initialise_from(self, path: str) -> None:
        status = tf.train.Checkpoint(model=self._model).read(path)
        status.assert_existing_objects_matched()
        status.expect_partial()
        self.initialised_from = self._last_good = path

    def _restore_from(self, path: str) -> None:
        # Every object we track must be found: a silent partial restore is not a resume.
        self.checkpoint.restore(path).assert_existing_objects_matched()
        if self.worker_manager is not None:
            worker_path = os.path.join(self.worker_manager.directory, os.path.basename(path))
            if not tf.io.gfile.exists(worker_path + ".index"):
                raise CheckpointError(
                    f"{worker_path} is missing: this worker's input state for {path}; "
                    "restart with the same number of workers as the saved run")
            self.worker_manager.checkpoint.restore(
                worker_path).assert_existing_objects_matched()

    def save(self, step: int) -> str:
        """Writes `ckpt-<step>` (all workers call this together); returns the chief's path.

        Args:
          step: the global step, used as the checkpoint number.

        Raises:
          CheckpointError: the write failed (a full disk, permissions); what it wrote is
            removed and the `checkpoint` index still names the last good checkpoint.
        """
        try:
            if self.worker_manager is not None:
                # Before the main save: `checkpoint` never names a step whose input state is
                # absent.
                self.worker_manager.save(checkpoint_number=step)
            path = self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            self._remove_partial(step)
            good = self.latest()
            fix = "free space" if model_dir_lib.is_disk_full(e) else "fix that"
            then = (f"the last good checkpoint {good} is intact: {fix} and run the same "
                    "command to resume from it" if good else
                    f"no checkpoint was written yet: {fix} and run the same command")
            raise CheckpointError(str(model_dir_lib.output_error(
                e, path=os.path.join(self._directory, f"ckpt-{step}"),
                what="saving checkpoint", then=then))) from None
        if not self.is_chief:
            shutil.rmtree(self._directory, ignore_errors=True)
            path = os.path.join(self.model_dir, f"ckpt-{step}")
        self._last_good = path
        return path

    def _remove_partial(self, step: int) -> None:
        """Removes what a failed save of `step` left: its `_temp/` parts, TF's temporary
        `checkpoint.tmp*`, and its files when the `checkpoint` index does not list them."""
        managers = [m for m in (self.manager, self.worker_manager) if m is not None]
        for manager in managers:
            directory = manager.directory
            prefix = os.path.join(directory, f"ckpt-{step}")
            shutil.rmtree(prefix + "_temp", ignore_errors=True)
            for tmp in glob.glob(os.path.join(directory, "checkpoint.tmp*")):
                _remove(tmp)
            state = tf.train.get_checkpoint_state(directory)
            listed = [p if os.path.isabs(p) else os.path.join(directory, p)
                      for p in (state.all_model_checkpoint_paths if state else [])]
            if prefix not in listed:
                for leftover in glob.glob(prefix + ".index") + glob.glob(prefix + ".data-*"):
                    _remove(leftover)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
