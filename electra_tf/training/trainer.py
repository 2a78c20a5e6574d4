"""The pretraining loop: a custom tf.distribute training loop with exact resume.

`train(cfg, train_data=..., model_dir=..., vocab=...)` is the whole run; `python -m
electra_tf.train` and `make demo` both call it. Its shape follows DESIGN.md:

- `strategy.run` inside a `tf.function` that runs up to `steps_per_loop` steps (a `tf.range`
  loop over a distributed iterator), not `model.fit` (Keras 3's fit fails under
  MultiWorkerMirroredStrategy, keras-team/keras#20585);
- per-replica input: one `pretraining_dataset(..., input_context=...)` pipeline per worker
  at the per-replica batch size whose consecutive batches go to the worker's replicas (the
  layout of `strategy.distribute_datasets_from_function`), read through a plain tf.data
  iterator because tf.distribute's distributed iterators cannot be checkpointed in TF 2.20;
- the optimizer is built on the trainable variables inside the strategy scope before the
  first step (keras-team/keras#23085);
- each replica's loss is divided by the number of replicas and the optimizer sums the
  gradients across replicas before clipping, so one device and N devices take the same step
  on the same global batch;
- masking/sampling seeds come from a checkpointed `tf.random.Generator`; dropout seeds are
  checkpointed too (see checkpointing.py), so a resumed run is exact.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from electra_tf import config as config_lib
from electra_tf.training import checkpointing, metrics_log, model_dir as model_dir_lib
from electra_tf.training import strategy as strategy_lib

# Per-step scalars reduced across replicas (mean) and accumulated over a log interval.
TRAIN_METRICS = ("loss", "mlm_loss", "disc_loss", "masked_lm_accuracy", "disc_accuracy")
EVAL_METRICS = ("loss", "mlm_loss", "disc_loss", "masked_lm_accuracy",
                "sampled_masked_lm_accuracy", "disc_accuracy", "disc_precision", "disc_recall")
# Exit status of the binary after a SIGTERM (preemption): 128 + SIGTERM, the shell convention.
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


class TrainerError(ValueError):
    """The run cannot start as configured (one-line message: what, where, what to do)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; nothing was saved after the last good step."""


class _Preemption:
    """Turns SIGTERM into a flag the loop checks between step loops (then saves and stops)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: preemption is then the caller's business
            self._previous = None
        return self

    def _handle(self, signum, frame):  # pylint: disable=unused-argument
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _seed_for_group(step_seed, group_index):
    """Stateless seed of one group of examples: fold the global group index into the step seed.

    Masks depend only on (step, global example group), never on which replica holds the
    group, so splitting the same global batch over more replicas draws the same masks.
    """
    return tf.random.experimental.stateless_fold_in(step_seed, tf.cast(group_index, tf.int64))


def _next_boundary(step: int, every: int) -> int:
    return (step // every + 1) * every if every > 0 else 1 << 62


def train(
    cfg: config_lib.ElectraConfig,
    *,
    train_data: str,
    model_dir: str,
    vocab: Optional[str] = None,
    eval_data: Optional[str] = None,
    strategy_name: str = "one_device",
    num_gpus: int = 0,
    all_reduce_alg: Optional[str] = None,
    tpu_address: Optional[str] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    peak_tflops: Optional[float] = None,
    deterministic: bool = False,
    seed_group_size: int = 0,
    log_fn: Optional[Callable[[str], None]] = None,
    debug_sigkill_after_checkpoint: Optional[int] = None,
    debug_sigterm_at_step: Optional[int] = None,
) -> dict:
    """Pretrains (or resumes pretraining of) an ELECTRA model; returns the final metrics.

    Running the same call again continues from the newest checkpoint in `model_dir`.

    Args:
      cfg: the resolved config (`electra_tf.config.load_config`); `model.vocab_size` is set
        from the vocabulary.
      train_data: glob (or directory) of pretraining TFRecords with their `dataset.json`.
      model_dir: run directory (config.yaml, vocab.txt, ckpt-N, metrics.jsonl, events).
      vocab: vocab.txt the data was built with; required unless `model_dir` has one.
      eval_data: optional held-out TFRecords evaluated every `training.eval_every` steps
        (and at the end) for `training.eval_steps` batches.
      strategy_name: one_device | mirrored | multi_worker_mirrored | tpu.
      num_gpus: GPUs for one_device/mirrored (Model Garden convention).
      all_reduce_alg: cross-device all-reduce algorithm (Model Garden convention).
      tpu_address: TPU name/address for the `tpu` strategy.
      strategy: an already built strategy (overrides the three arguments above).
      peak_tflops: per-device peak for MFU; None measures the matmul peak once.
      deterministic: enable TF op determinism (bit-exact reruns and resumes on CPU).
      seed_group_size: examples that share one masking seed; 0 means the per-replica
        batch (one seed per replica and step). Any size dividing the per-replica batch makes
        the masks independent of how the global batch is split over replicas.
      log_fn: where the human-readable log lines go; None: absl logging under an absl app
        (the binaries), else stdout.
      debug_sigkill_after_checkpoint: test hook: SIGKILL this process right after the
        checkpoint of this step is written (simulates a crash).
      debug_sigterm_at_step: test hook: send SIGTERM to this process at this step
        (simulates a preemption).

    Returns:
      dict with `step`, `checkpoint`, `preempted`, the last train interval's metrics under
      `train` and the last evaluation's under `eval` (absent without `eval_data`).

    Raises:
      TrainerError, ModelDirError, DataMismatchError, ConfigError: bad input (one line).
      NonFiniteLossError: the loss became NaN/inf; the last good checkpoint is intact.
    """
    from electra_tf.data import pretraining_reader
    from electra_tf.text import vocab as vocab_lib
    from electra_tf.training import optimization

    if log_fn is None:
        log_fn = logging.info if flags.FLAGS.is_parsed() else functools.partial(print, flush=True)
    t = cfg.training
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    # Same seed -> same initial weights, dropout streams and data order on every worker.
    keras.utils.set_random_seed(t.seed)
    optimization.configure_precision(t.mixed_precision)

    if strategy is None:
        strategy = strategy_lib.make_strategy(
            strategy_name, num_gpus=num_gpus, all_reduce_alg=all_reduce_alg,
            tpu_address=tpu_address)
    layout = strategy_lib.worker_layout(strategy)
    is_chief = layout["is_chief"]
    cfg, tokens = model_dir_lib.prepare_model_dir(model_dir, cfg, vocab, write=is_chief)
    where = f"{os.path.join(model_dir, model_dir_lib.VOCAB_FILE)} / data.max_seq_length"
    for pattern in filter(None, (train_data, eval_data)):
        pretraining_reader.check_sidecar(
            pretraining_reader.read_sidecar(pattern), vocab_hash=vocab_lib.vocab_hash(tokens),
            max_seq_length=cfg.data.max_seq_length, where=where)

    num_replicas = strategy.num_replicas_in_sync
    global_batch = t.batch_size
    if global_batch % num_replicas:
        raise TrainerError(
            f"training.batch_size={global_batch} is not divisible by the {num_replicas} "
            f"replicas of --strategy={strategy_name}; use a multiple of {num_replicas}")
    per_replica_batch = global_batch // num_replicas
    group = seed_group_size or cfg.training.seed_group_size or per_replica_batch
    if per_replica_batch % group:
        raise TrainerError(
            f"seed_group_size={group} does not divide the per-replica batch "
            f"{per_replica_batch}; use a divisor of it (or 0)")
    groups_per_replica = per_replica_batch // group
    seq = cfg.data.max_seq_length

    # One input pipeline per worker at the per-replica batch size; its consecutive batches
    # go to the worker's replicas in order (what distribute_datasets_from_function does), but
    # through a plain tf.data iterator, which, unlike tf.distribute's, can be checkpointed.
    input_context = tf.distribute.InputContext(
        num_input_pipelines=layout["num_workers"], input_pipeline_id=layout["worker_index"],
        num_replicas_in_sync=num_replicas)
    num_local = layout["num_local_replicas"]

    def make_dataset(data, shuffle):
        return pretraining_reader.pretraining_dataset(
            data, per_replica_batch, seq, input_context=input_context, shuffle=shuffle,
            repeat=True, seed=t.seed)

    def next_per_replica(iterator):
        batches = [next(iterator) for _ in range(num_local)]
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: batches[ctx.replica_id_in_sync_group % num_local])

    iterator = iter(make_dataset(train_data, True))

    with strategy.scope():
        model = model_dir_lib.build_pretrainer(cfg, tokens)
        optimizer = optimization.create_optimizer(
            cfg.optimizer, t.train_steps, mixed_precision=t.mixed_precision)
        optimizer.build(model.trainable_variables)  # keras-team/keras#23085
        accumulator = None
        if t.grad_accum_steps > 1:
            # A step is one optimizer update over grad_accum_steps micro-batches.
            accumulator = optimization.GradientAccumulator(
                optimizer, model.trainable_variables, t.grad_accum_steps)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    # Host-side generator, drawn in the cross-replica part of the loop; the seed it yields is
    # passed into the replicas, so the replica step stays free of host ops (TPU, XLA).
    rng = tf.random.Generator.from_seed(t.seed)

    state = dict(model=model, optimizer=optimizer, step=step, rng=rng,
                 dropout_seeds=checkpointing.dropout_seed_states(model))
    worker_state = None
    if layout["num_workers"] > 1:
        worker_state = {"iterator": iterator}
    else:
        state["iterator"] = iterator
    ckpt = checkpointing.TrainCheckpoint(
        model_dir, max_to_keep=t.max_checkpoints, is_chief=is_chief,
        worker_index=layout["worker_index"], worker_objects=worker_state, **state)
    restored = ckpt.restore()
    start_step = int(step.numpy())
    log = metrics_log.MetricsLog(model_dir, enabled=is_chief)
    log.truncate_after(start_step)
    if restored:
        log_fn(f"resumed from {restored} at step {start_step}")

    trainable = model.trainable_variables

    def compute_gradients(batch, step_seed, first_group):
        """Loss and gradients of one replica's batch (XLA-compilable: no host ops).

        `first_group` is the global index of this batch's first seed group within the step
        (counting over micro-batches and replicas), so masks do not depend on how the step's
        examples are split into replicas or accumulated micro-batches.
        """
        with tf.GradientTape() as tape:
            outputs = []
            for g in range(groups_per_replica):
                part = {k: v[g * group:(g + 1) * group] for k, v in batch.items()}
                seed = _seed_for_group(step_seed, first_group + g)
                outputs.append(model.compute_losses(part, seed, training=True))
            metrics = {k: tf.add_n([o[k] for o in outputs]) / groups_per_replica
                       for k in TRAIN_METRICS}
            # Each replica's loss is a mean over its examples; dividing by the replica count
            # makes the optimizer's cross-replica gradient *sum* the global-batch mean.
            scaled = optimizer.scale_loss(metrics["loss"] / num_replicas)
        grads = tape.gradient(scaled, trainable)
        # Dense gradients: embedding lookups give IndexedSlices with one row per token, and
        # Keras' global norm of IndexedSlices squares the rows before summing duplicates,
        # so the clipping norm would be wrong (and differ between one and many replicas).
        # The Adam update is dense anyway.
        grads = [tf.zeros_like(v) if g_ is None else tf.convert_to_tensor(g_)
                 for g_, v in zip(grads, trainable)]
        return grads, metrics

    compute_gradients_fn = tf.function(compute_gradients, jit_compile=t.jit_compile)

    def replica_step(batch, step_seed, micro, apply_update):
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        first_group = (micro * num_replicas + replica_id) * groups_per_replica
        grads, metrics = compute_gradients_fn(
            batch, step_seed, tf.cast(first_group, tf.int64))
        if accumulator is None:
            optimizer.apply(grads, trainable)
        else:
            accumulator.accumulate(grads)
            if apply_update:  # Python bool: the last micro-batch of the step
                accumulator.apply()
        metrics["tokens"] = tf.cast(tf.reduce_sum(batch["padding_mask"]), tf.float32)
        return metrics

    micro_batches = t.grad_accum_steps

    @tf.function
    def train_loop(iterator, num_steps):
        totals = tf.zeros([len(TRAIN_METRICS) + 1], tf.float32)
        finite = tf.constant(True)
        for _ in tf.range(num_steps):
            step_seed = rng.make_seeds(1)[:, 0]
            values = []
            for micro in range(micro_batches):
                out = strategy.run(
                    functools.partial(replica_step, micro=micro,
                                      apply_update=micro == micro_batches - 1),
                    args=(next_per_replica(iterator), step_seed))
                micro_values = [strategy.reduce(tf.distribute.ReduceOp.MEAN, out[k], axis=None)
                                / micro_batches for k in TRAIN_METRICS]
                micro_values.append(
                    strategy.reduce(tf.distribute.ReduceOp.SUM, out["tokens"], axis=None))
                values.append(tf.stack(micro_values))
            values = tf.add_n(values)
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(values)))
            totals += values
            step.assign_add(1)
        return totals, finite

    evaluate = None
    if eval_data:
        evaluate = _make_evaluator(strategy, model, cfg, make_dataset(eval_data, False),
                                   next_per_replica, group, groups_per_replica)

    flops_per_example = optimization.model_flops_per_sequence(cfg)
    if peak_tflops:
        peak_flops = peak_tflops * 1e12
    else:
        dtype = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(
            t.mixed_precision, "float32")
        peak_flops = optimization.measure_matmul_peak(dtype, size=1024, seconds=0.3)
    peak_flops *= num_replicas

    result = {"step": start_step, "checkpoint": restored, "preempted": False}
    current = start_step
    interval = np.zeros(len(TRAIN_METRICS) + 1)
    interval_steps, interval_time = 0, 0.0
    with _Preemption() as preemption:
        while current < t.train_steps:
            stop = min(t.train_steps, current + t.steps_per_loop,
                       _next_boundary(current, t.log_every),
                       _next_boundary(current, t.checkpoint_every),
                       _next_boundary(current, t.eval_every if evaluate else 0))
            for hook in (debug_sigkill_after_checkpoint, debug_sigterm_at_step):
                if hook and current < hook:
                    stop = min(stop, hook)
            start = time.perf_counter()
            totals, finite = train_loop(iterator, tf.constant(stop - current, tf.int32))
            totals = totals.numpy()
            interval_time += time.perf_counter() - start
            if not bool(finite):
                raise NonFiniteLossError(
                    f"training stopped: the loss became non-finite between steps {current + 1} "
                    f"and {stop}; nothing after the last good checkpoint was saved "
                    f"({ckpt.latest() or 'none yet'}); lower optimizer.learning_rate, check "
                    "the data, or use training.mixed_precision=none")
            interval += totals
            interval_steps += stop - current
            current = stop

            if current % t.log_every == 0 or current == t.train_steps:
                result["train"] = _log_train(
                    log, log_fn, current, t.train_steps, interval, interval_steps,
                    interval_time, global_batch * micro_batches, optimizer,
                    flops_per_example, peak_flops)
                interval[:] = 0
                interval_steps, interval_time = 0, 0.0
            eval_due = bool(t.eval_every) and current % t.eval_every == 0
            if evaluate and (eval_due or current == t.train_steps):
                result["eval"] = _log_eval(log, log_fn, current, evaluate(t.eval_steps))
            if debug_sigterm_at_step and current == debug_sigterm_at_step:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)  # let the handler run before the check below
            if (current % t.checkpoint_every == 0 or current == t.train_steps
                    or preemption.requested or current == debug_sigkill_after_checkpoint):
                result["checkpoint"] = ckpt.save(current)
                log_fn(f"saved checkpoint {result['checkpoint']}")
                if debug_sigkill_after_checkpoint and current == debug_sigkill_after_checkpoint:
                    os.kill(os.getpid(), signal.SIGKILL)
            if preemption.requested:
                log_fn(f"SIGTERM received: saved step {current} and stopped; run the same "
                       "command again to continue")
                result["preempted"] = True
                break
    result["step"] = current
    log.close()
    return result


def _log_train(log, log_fn, step, train_steps, interval, steps, seconds, global_batch,
               optimizer, flops_per_example, peak_flops) -> dict:
    """Writes one train record (interval means) to metrics.jsonl/TensorBoard and the log."""
    means = interval[:-1] / steps
    record = {"split": "train", "step": step}
    record.update({k: float(v) for k, v in zip(TRAIN_METRICS, means)})
    examples_per_sec = steps * global_batch / seconds
    record["learning_rate"] = float(optimizer.learning_rate.numpy())
    record["examples_per_sec"] = examples_per_sec
    record["tokens_per_sec"] = float(interval[-1]) / seconds
    record["mfu"] = flops_per_example * examples_per_sec / peak_flops
    log.write(record)
    log_fn(
        f"step {step}/{train_steps} | loss {record['loss']:.4f} mlm {record['mlm_loss']:.4f} "
        f"disc {record['disc_loss']:.4f} | lr {record['learning_rate']:.3e} | "
        f"{examples_per_sec:.1f} ex/s {record['tokens_per_sec']:.0f} tok/s | "
        f"mfu {100 * record['mfu']:.2f}%")
    return record


def _log_eval(log, log_fn, step, metrics: dict) -> dict:
    record = {"split": "eval", "step": step, **metrics}
    log.write(record)
    log_fn(f"eval step {step} | " + " ".join(
        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return record


def _make_evaluator(strategy, model, cfg, dataset, next_per_replica, group,
                    groups_per_replica):
    """Returns evaluate(num_steps) -> dict over the first `num_steps` eval batches.

    The eval data is read in file order from the start each time and the masking seeds are
    fixed, so successive evaluations of one run differ only by the weights.
    """
    eval_seed = tf.constant([cfg.training.seed, 0x5EED], tf.int64)

    def replica_eval(batch, step_seed):
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        outputs = []
        for g in range(groups_per_replica):
            part = {k: v[g * group:(g + 1) * group] for k, v in batch.items()}
            seed = _seed_for_group(step_seed, replica_id * groups_per_replica + g)
            outputs.append(model.compute_losses(part, seed, training=False))
        scalars = {k: tf.add_n([o[k] for o in outputs]) / groups_per_replica
                   for k in EVAL_METRICS}
        arrays = {k: tf.concat([o[k] for o in outputs], 0)
                  for k in ("disc_probs", "disc_labels", "disc_weights")}
        return scalars, arrays

    @tf.function
    def eval_step(iterator, step_index):
        step_seed = _seed_for_group(eval_seed, step_index)
        scalars, arrays = strategy.run(replica_eval, args=(next_per_replica(iterator), step_seed))
        scalars = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                   for k, v in scalars.items()}
        arrays = {k: strategy.gather(v, axis=0) for k, v in arrays.items()}
        return scalars, arrays

    def evaluate(num_steps: int) -> dict:
        iterator = iter(dataset)
        auc = keras.metrics.AUC(num_thresholds=1000)
        sums = {k: 0.0 for k in EVAL_METRICS}
        for i in range(num_steps):
            scalars, arrays = eval_step(iterator, tf.constant(i, tf.int64))
            for k in EVAL_METRICS:
                sums[k] += float(scalars[k])
            # AUC over every non-pad token of all eval steps (reference metric_fn).
            auc.update_state(tf.reshape(arrays["disc_labels"], [-1]),
                             tf.reshape(arrays["disc_probs"], [-1]),
                             sample_weight=tf.reshape(arrays["disc_weights"], [-1]))
        metrics = {k: v / num_steps for k, v in sums.items()}
        metrics["disc_auc"] = float(auc.result())
        return metrics

    return evaluate
