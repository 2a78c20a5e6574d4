"""Fine-tuning one seed: a custom tf.distribute loop with per-epoch evaluation, best-epoch
selection and exact resume.

The loop mirrors pretraining's (docs/architecture.md, "Training step"): `strategy.run`
inside a `tf.function`, each replica's loss divided by the replica count, gradients summed
across replicas before clipping. Data order is a function of (seed, epoch) alone, so a resumed
run rebuilds the epoch's order and skips the batches already done instead of checkpointing
the iterator; the checkpoint holds the model, optimizer, step and dropout seed states.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from electra_tf import files
from electra_tf.training.finetune_options import FinetuneError


@dataclasses.dataclass
class SeedRun:
    """What one seed's run needs besides the model.

    Args:
      directory: where this seed's checkpoints, best weights, state and logs go.
      kind: "classification", "regression" or "tagging".
      epochs: passes over the training data.
      batch_size: global batch size.
      steps_per_epoch: optimizer updates per epoch (`len(train) // batch_size`).
      seed: data order and initialisation seed.
      checkpoint_every: also save every this many steps inside an epoch (0: epoch ends only).
      evaluate: function(model) -> dict of dev metrics.
      primary_metric: the metric that picks the best epoch (higher is better).
      log: where progress lines go.
      show_progress: a tqdm bar per epoch.
    """

    directory: str
    kind: str
    epochs: int
    batch_size: int
    steps_per_epoch: int
    seed: int
    evaluate: Callable
    primary_metric: str
    checkpoint_every: int = 0
    log: Callable = print
    show_progress: bool = True


def task_loss(kind, logits, labels, weights):
    """Per-replica mean loss: softmax cross-entropy (classification, tagging) or MSE.

    Args:
      kind: the task kind.
      logits: float32 [B, C], [B, 1] or [B, S, C].
      labels: int [B], float [B] or int [B, S].
      weights: float [B] or [B, S] (0 on pieces that carry no label).
    """
    if kind == "regression":
        per_example = tf.square(logits[:, 0] - tf.cast(labels, tf.float32))
    else:
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=logits)
    weights = tf.cast(weights, tf.float32)
    return tf.reduce_sum(per_example * weights) / (tf.reduce_sum(weights) + 1e-6)


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch: a permutation that depends on (seed, epoch) only.

    Example:

    >>> np.array_equal(epoch_order(10, 1, 0), epoch_order(10, 1, 0))
    True
    >>> sorted(epoch_order(5, 1, 2).tolist())
    [0, 1, 2, 3, 4]
    """
    return np.random.default_rng([seed, epoch, 0xE1EC]).permutation(num_examples)


def _read_state(path: str) -> dict:
    if not os.path.isfile(path):
        return {"epochs": [], "best": None}
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("epochs"), list):
        raise FinetuneError(
            f"{path} is not a readable state file: this seed's record of its epochs is "
            f"damaged; delete {os.path.dirname(path)} to train this seed again")
    return state


def train_seed(run: SeedRun, strategy, model, optimizer, step, features,
               extra_state: Optional[dict] = None,
               callbacks: Sequence = ()) -> dict:
    """Trains one seed to the end (or resumes it); returns its state (per-epoch metrics, best).

    Args:
      run: the `SeedRun`.
      strategy: the strategy the model and optimizer were built under.
      model: an `ElectraTaskModel`.
      optimizer: built on `model.trainable_variables` inside the strategy scope.
      step: int64 variable counting optimizer updates.
      features: the training `Features`.
      extra_state: more trackables to checkpoint (dropout seed states).
      callbacks: objects with optional `on_checkpoint(step, path)` (tests inject faults).

    Returns:
      dict(epochs=[{epoch, step, metrics}...], best={epoch, metrics}).
    """
    from electra_tf.training.checkpointing import TrainCheckpoint

    os.makedirs(run.directory, exist_ok=True)
    # Two kept: a damaged newest one falls back to the older (docs/architecture.md,
    # "The checkpoint").
    ckpt = TrainCheckpoint(run.directory, max_to_keep=2, model=model, optimizer=optimizer,
                           step=step, **(extra_state or {}))
    best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), os.path.join(run.directory, "best"), max_to_keep=2,
        checkpoint_name="model")  # 2: the best recorded in state.json survives the next save
    restored = ckpt.restore()
    state_path = os.path.join(run.directory, "state.json")
    state = _read_state(state_path)
    if restored:
        run.log(f"seed {run.seed}: resumed from {restored} at step {int(step.numpy())}")
    num_replicas = strategy.num_replicas_in_sync
    trainable = model.trainable_variables

    def replica_step(inputs, labels, weights):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)["logits"]
            loss = task_loss(run.kind, logits, labels, weights)
            scaled = optimizer.scale_loss(loss / num_replicas)
        grads = tape.gradient(scaled, trainable)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, trainable)]
        optimizer.apply(grads, trainable)
        return loss

    @tf.function
    def train_step(batch):
        losses = strategy.run(replica_step, args=batch)
        step.assign_add(1)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)

    writer = tf.summary.create_file_writer(os.path.join(run.directory, "logs"))
    total_steps = run.epochs * run.steps_per_epoch
    n = len(features)
    while int(step.numpy()) < total_steps:
        current = int(step.numpy())
        epoch, done = divmod(current, run.steps_per_epoch)
        order = epoch_order(n, run.seed, epoch)[:run.steps_per_epoch * run.batch_size]
        arrays = ({k: v[order] for k, v in features.inputs.items()},
                  features.labels[order], features.weights[order])
        dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(
            run.batch_size, drop_remainder=True).skip(done)
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        bar = _progress(run, epoch, done)
        start, losses = time.perf_counter(), []
        for _ in range(done, run.steps_per_epoch):
            loss = float(train_step(next(iterator)))
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"seed {run.seed}: the loss became non-finite at step {int(step.numpy())}; "
                    "lower --learning_rate")
            losses.append(loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
            now = int(step.numpy())
            if now % 10 == 0:
                with writer.as_default(step=now):
                    tf.summary.scalar("train/loss", loss)
            if (run.checkpoint_every and now % run.checkpoint_every == 0
                    and now % run.steps_per_epoch):
                path = ckpt.save(now)
                for callback in callbacks:
                    getattr(callback, "on_checkpoint", lambda *a: None)(now, path)
        if bar is not None:
            bar.close()
        now = int(step.numpy())
        metrics = run.evaluate(model)
        elapsed = time.perf_counter() - start
        record = {"epoch": epoch + 1, "step": now, "train_loss": float(np.mean(losses)),
                  "seconds": elapsed, "metrics": metrics}
        state["epochs"] = [e for e in state["epochs"] if e["epoch"] < epoch + 1] + [record]
        with writer.as_default(step=now):
            for name, value in metrics.items():
                tf.summary.scalar(f"dev/{name}", value)
        best = state.get("best")
        if best is None or metrics[run.primary_metric] > best["metrics"][run.primary_metric]:
            best_manager.save(checkpoint_number=epoch + 1)
            state["best"] = {"epoch": epoch + 1, "metrics": metrics,
                             "checkpoint": os.path.basename(best_manager.latest_checkpoint)}
        files.atomic_write_text(state_path, json.dumps(state, indent=1) + "\n")
        path = ckpt.save(now)
        for callback in callbacks:
            getattr(callback, "on_checkpoint", lambda *a: None)(now, path)
        run.log(f"seed {run.seed} epoch {epoch + 1}/{run.epochs}: " + " ".join(
            f"{k} {v:.4f}" for k, v in metrics.items()) + f" ({elapsed:.0f} s)")
    writer.close()
    return state


def _progress(run: SeedRun, epoch: int, done: int):
    if not run.show_progress:
        return None
    from tqdm import tqdm

    return tqdm(total=run.steps_per_epoch, initial=done, unit="step", leave=False,
                desc=f"seed {run.seed} epoch {epoch + 1}/{run.epochs}", dynamic_ncols=True)
