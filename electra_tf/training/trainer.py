"""The pretraining run: the outer loop around `step.PretrainingStep` with exact resume.

`train(cfg, train_data=..., model_dir=..., vocab=...)` is the whole run; `python -m
electra_tf.train` and `make demo` both call it. The step itself (per-replica step, loop of
`steps_per_loop` steps, eval step) lives in `training/step.py`; this module owns what goes
around it: checking the inputs, the model dir, checkpoints (model, optimizer, step, masking
RNG, dropout seeds and the input iterator, so a resumed run is exact; see checkpointing.py),
logging, preemption signals and callbacks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from electra_tf import config as config_lib
from electra_tf import model_dir as model_dir_lib
from electra_tf.training import checkpointing, host_memory, metrics_log, step as step_lib
from electra_tf.training import strategy as strategy_lib

TRAIN_METRICS = step_lib.TRAIN_METRICS
# Exit status of the binary after a preemption signal: 128 + the signal, the shell convention.
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


class TrainerError(ValueError):
    """The run cannot start as configured (one-line message: what, where, what to do)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; nothing was saved after the last good step."""


class Callback:
    """Hooks into the outer loop (what tests use to inject crashes and preemptions).

    Subclass and override what you need; every method is a no-op here.
    """

    def next_boundary(self, step: int) -> Optional[int]:
        """A step after `step` at which the loop must hand control back, or None."""
        del step
        return None

    def on_loop_end(self, step: int, result: dict) -> None:
        """After the steps up to `step` ran (and were logged/evaluated), before any save."""

    def on_checkpoint(self, step: int, path: str) -> None:
        """After `ckpt-<step>` was written to `path`."""


class _Preemption:
    """Turns SIGTERM and SIGINT (Ctrl-C) into a flag the loop checks between step loops;
    the loop then saves a checkpoint and stops, so no finished step is lost."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: preemption is then the caller's business
                pass
        return self

    def _handle(self, signum, frame):  # pylint: disable=unused-argument
        self.signum = signum

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _next_boundary(step: int, every: int) -> int:
    return (step // every + 1) * every if every > 0 else 1 << 62


def train(
    cfg: config_lib.ElectraConfig,
    *,
    train_data: str,
    model_dir: str,
    vocab: Optional[str] = None,
    eval_data: Optional[str] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    log_fn: Optional[Callable[[str], None]] = None,
    callbacks: Sequence[Callback] = (),
) -> dict:
    """Pretrains (or resumes pretraining of) an ELECTRA model; returns the final metrics.

    Running the same call again continues from the newest checkpoint in `model_dir`.
    Everything about the run is in `cfg` (`runtime.*` chooses the strategy, determinism
    and the MFU peak), so `model_dir/config.yaml` records it all.

    Args:
      cfg: the resolved config (`electra_tf.config.load_config`); `model.vocab_size` is set
        from the vocabulary.
      train_data: glob (or directory) of pretraining TFRecords with their `dataset.json`.
      model_dir: run directory (config.yaml, vocab.txt, ckpt-N, metrics.jsonl, events).
      vocab: vocab.txt the data was built with; required unless `model_dir` has one.
      eval_data: optional held-out TFRecords evaluated every `training.eval_every` steps
        (and at the end) for `training.eval_steps` batches.
      strategy: an already built strategy (overrides `runtime.strategy` and friends).
      log_fn: where the human-readable log lines go; None: absl logging under an absl app
        (the binaries), else stdout.
      callbacks: `Callback`s called by the outer loop.

    Returns:
      dict with `step`, `checkpoint`, `preempted` (the signal number, or False), the last
      train interval's metrics under `train` and the last evaluation's under `eval` (absent
      without `eval_data`).

    Raises:
      TrainerError, ModelDirError, DataError (DataMismatchError), ConfigError,
        BatchLayoutError, StrategyError, CheckpointError: bad input, a model dir in use by
        another run, a damaged shard met mid-run or a full disk (one line; the last good
        checkpoint is intact).
      NonFiniteLossError: the loss became NaN/inf; the last good checkpoint is intact.
    """
    from electra_tf.data import pretraining_reader
    from electra_tf.text import vocab as vocab_lib
    from electra_tf.training import precision

    if log_fn is None:
        log_fn = logging.info if flags.FLAGS.is_parsed() else functools.partial(print, flush=True)
    # Before any work: a model dir that is a file or cannot be written is refused.
    model_dir_lib.check_writable_dir(model_dir)
    t, runtime = cfg.training, cfg.runtime
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    # Same seed -> same initial weights, dropout streams and data order on every worker.
    keras.utils.set_random_seed(t.seed)
    precision.configure_precision(t.mixed_precision)

    if strategy is None:
        strategy = strategy_lib.make_strategy(
            runtime.strategy, num_gpus=runtime.num_gpus, all_reduce_alg=runtime.all_reduce_alg,
            tpu_address=runtime.tpu)
    layout = strategy_lib.worker_layout(strategy)
    is_chief = layout["is_chief"]
    # One input pipeline per worker at the per-replica batch size; its consecutive batches
    # go to the worker's replicas in order (what distribute_datasets_from_function does), but
    # through a plain tf.data iterator, which, unlike tf.distribute's, can be checkpointed.
    input_context = tf.distribute.InputContext(
        num_input_pipelines=layout["num_workers"], input_pipeline_id=layout["worker_index"],
        num_replicas_in_sync=strategy.num_replicas_in_sync)

    # Every check first, writing nothing; the model dir is written only once all passed.
    cfg, tokens = model_dir_lib.prepare_model_dir(model_dir, cfg, vocab, write=False)
    vocab_path = vocab or os.path.join(model_dir, model_dir_lib.VOCAB_FILE)
    for pattern in filter(None, (train_data, eval_data)):
        sidecar = pretraining_reader.read_sidecar(pattern)
        pretraining_reader.check_sidecar(
            sidecar, vocab_hash=vocab_lib.vocab_hash(tokens),
            max_seq_length=cfg.data.max_seq_length, lower_case=cfg.data.lower_case,
            where="this run's config", vocab_where=vocab_path,
            length_where="this run's config")
        # Each shard against the sidecar (sizes; every record with runtime.verify_data) and no
        # empty data: a repeated empty dataset would spin forever without a batch.
        pretraining_reader.check_shards(pattern, sidecar, input_context=input_context,
                                        full=runtime.verify_data)
    batch_layout = step_lib.BatchLayout.plan(
        global_batch=t.batch_size, num_replicas=strategy.num_replicas_in_sync,
        num_local_replicas=layout["num_local_replicas"], seed_group_size=t.seed_group_size,
        micro_batches=t.grad_accum_steps)

    # One writer per model dir (docs/architecture.md, "The model dir"): the lock comes
    # before the first write, and is held to the end of the run.
    lock = model_dir_lib.lock_model_dir(model_dir) if is_chief else None
    try:
        if is_chief:
            removed = model_dir_lib.remove_stale_temporaries(model_dir)
            if removed:
                log_fn(f"removed {len(removed)} leftover(s) of an interrupted run: "
                       + ", ".join(os.path.relpath(p, model_dir) for p in removed))
        cfg, tokens = model_dir_lib.prepare_model_dir(model_dir, cfg, vocab, write=is_chief)
        return _train_locked(
            cfg, tokens, train_data=train_data, eval_data=eval_data, model_dir=model_dir,
            strategy=strategy, layout=layout, input_context=input_context,
            batch_layout=batch_layout, log_fn=log_fn, callbacks=callbacks)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(cfg, tokens, *, train_data, eval_data, model_dir, strategy, layout,
                  input_context, batch_layout, log_fn, callbacks) -> dict:
    """The run itself, once every check has passed and the model dir is locked."""
    from electra_tf.data import pretraining_reader
    from electra_tf.training import flops

    t, runtime = cfg.training, cfg.runtime
    is_chief = layout["is_chief"]

    def make_dataset(data, shuffle):
        return pretraining_reader.pretraining_dataset(
            data, batch_layout.per_replica_batch, cfg.data.max_seq_length,
            input_context=input_context, shuffle=shuffle, repeat=True, seed=t.seed)

    iterator = iter(make_dataset(train_data, True))
    state = step_lib.create_train_state(cfg, tokens, strategy)
    model, optimizer, step = state["model"], state["optimizer"], state["step"]
    rng = tf.random.Generator.from_seed(t.seed)
    pretraining_step = step_lib.PretrainingStep(
        model, optimizer, strategy, batch_layout, step=step, rng=rng,
        accumulator=state["accumulator"], jit_compile=t.jit_compile,
        eval_seed=(t.seed, 0x5EED))

    saved = dict(model=model, optimizer=optimizer, step=step, rng=rng,
                 dropout_seeds=checkpointing.dropout_seed_states(model))
    worker_state = None
    if layout["num_workers"] > 1:
        worker_state = {"iterator": iterator}
    else:
        saved["iterator"] = iterator
    ckpt = checkpointing.TrainCheckpoint(
        model_dir, max_to_keep=t.max_checkpoints, is_chief=is_chief,
        worker_index=layout["worker_index"], worker_objects=worker_state, **saved)
    restored = ckpt.restore()
    start_step = int(step.numpy())
    log = _GuardedLog(metrics_log.MetricsLog(model_dir, enabled=is_chief), ckpt)
    log.truncate_after(start_step)
    if restored:
        log_fn(f"resumed from {restored} at step {start_step}")
    elif ckpt.initialised_from:
        log_fn(f"initialised from the converted weights {ckpt.initialised_from}: fresh "
               "optimizer, step 0")

    eval_dataset = make_dataset(eval_data, False) if eval_data else None
    flops_per_example = flops.model_flops_per_sequence(cfg)
    if runtime.peak_tflops:
        peak_flops = runtime.peak_tflops * 1e12
    else:
        dtype = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(
            t.mixed_precision, "float32")
        # The same measurement as benchmarks/train_step.py (matrix side by device, best of
        # ~1 s), so that the logged MFU and the benchmark's agree.
        peak_flops = flops.measure_matmul_peak(dtype, size=flops.peak_matmul_size(),
                                               seconds=1.0)
    peak_flops *= strategy.num_replicas_in_sync
    examples_per_step = t.batch_size * t.grad_accum_steps

    result = {"step": start_step, "checkpoint": restored, "preempted": False}
    current = start_step
    interval = np.zeros(len(TRAIN_METRICS) + 1)
    interval_steps, interval_time = 0, 0.0
    try:
        with _Preemption() as preemption:
            while current < t.train_steps:
                stop = min(t.train_steps, current + t.steps_per_loop,
                           _next_boundary(current, t.log_every),
                           _next_boundary(current, t.checkpoint_every),
                           _next_boundary(current, t.eval_every if eval_dataset else 0))
                for callback in callbacks:
                    wanted = callback.next_boundary(current)
                    if wanted is not None and wanted > current:
                        stop = min(stop, wanted)
                start = time.perf_counter()
                with _reading_data(train_data, "--train_data", current, ckpt):
                    totals, finite = pretraining_step.train_loop(
                        iterator, tf.constant(stop - current, tf.int32))
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
                        interval_time, examples_per_step, optimizer, flops_per_example,
                        peak_flops)
                    interval[:] = 0
                    interval_steps, interval_time = 0, 0.0
                eval_due = bool(t.eval_every) and current % t.eval_every == 0
                if eval_dataset is not None and (eval_due or current == t.train_steps):
                    with _reading_data(eval_data, "--eval_data", current, ckpt):
                        metrics = pretraining_step.evaluate(eval_dataset, t.eval_steps)
                    result["eval"] = _log_eval(log, log_fn, current, metrics)
                for callback in callbacks:
                    callback.on_loop_end(current, result)
                if (current % t.checkpoint_every == 0 or current == t.train_steps
                        or preemption.requested):
                    result["checkpoint"] = ckpt.save(current)
                    log_fn(f"saved checkpoint {result['checkpoint']}")
                    for callback in callbacks:
                        callback.on_checkpoint(current, result["checkpoint"])
                if preemption.requested:
                    name = signal.Signals(preemption.signum).name
                    log_fn(f"{name} received: saved step {current} and stopped; run the same "
                           "command again to continue")
                    result["preempted"] = preemption.signum
                    break
    except BaseException:
        with contextlib.suppress(Exception):
            log.close()
        raise
    result["step"] = current
    log.close()
    return result


class _GuardedLog:
    """`MetricsLog` whose failed writes (a full disk) leave no torn line and end the run
    with one line naming the file and the intact checkpoint."""

    def __init__(self, log, ckpt):
        self._log, self._ckpt = log, ckpt

    def _fail(self, error):
        good = self._ckpt.latest()
        fix = "free space" if model_dir_lib.is_disk_full(error) else "fix that"
        then = (f"the last good checkpoint {good} is intact: {fix} and run the same command "
                "to resume from it" if good else f"{fix} and run the same command")
        return TrainerError(str(model_dir_lib.output_error(
            error, path=self._log.path, what="writing metrics to", then=then)))

    def truncate_after(self, step):
        try:
            self._log.truncate_after(step)
        except (OSError, tf.errors.OpError) as e:
            raise self._fail(e) from None

    def write(self, record):
        path = self._log.path
        size = os.path.getsize(path) if os.path.exists(path) else None
        try:
            self._log.write(record)
        except (OSError, tf.errors.OpError) as e:
            # Cut a line torn by the failed write (truncating needs no free space).
            try:
                if size is None:
                    os.remove(path)
                else:
                    os.truncate(path, size)
            except OSError:
                pass
            raise self._fail(e) from None

    def close(self):
        try:
            self._log.close()
        except (OSError, tf.errors.OpError) as e:
            raise self._fail(e) from None


class _reading_data:  # pylint: disable=invalid-name
    """Turns a read error of the input pipeline (TF names neither the shard nor the record:
    `corrupted record at 4872`, `Values size: 128 but output shape: [64]`) into one line
    naming the damaged shard, found by reading the shards back. Nothing after the last
    checkpoint is saved, so the next run resumes from it."""

    def __init__(self, pattern, flag, step, ckpt):
        self.pattern, self.flag, self.step, self.ckpt = pattern, flag, step, ckpt

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if not isinstance(error, (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
                                  tf.errors.NotFoundError)):
            return False
        from electra_tf.data import pretraining_reader

        found = pretraining_reader.find_damaged_shard(self.pattern)
        if found is None:
            return False  # Not the data's fault: the original error stands.
        shard, problem = found
        good = self.ckpt.latest()
        kept = (f"the last good checkpoint {good} is intact" if good
                else "no checkpoint was written yet")
        raise pretraining_reader.DataError(
            f"{shard} ({self.flag}) {problem}; training stopped after step {self.step} and "
            f"{kept}: rebuild the data (rerun tools/build_pretraining_data.py with the same "
            "flags) and run the same command to resume") from None


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
    resident = host_memory.resident_gib()
    if resident is not None:
        record["memory_gib"] = resident
    record["peak_memory_gib"] = host_memory.peak_resident_gib()
    log.write(record)
    log_fn(
        f"step {step}/{train_steps} | loss {record['loss']:.4f} mlm {record['mlm_loss']:.4f} "
        f"disc {record['disc_loss']:.4f} | lr {record['learning_rate']:.3e} | "
        f"{examples_per_sec:.1f} ex/s {record['tokens_per_sec']:.0f} tok/s | "
        f"mfu {100 * record['mfu']:.2f}% | memory "
        + (f"{resident:.2f} GiB, " if resident is not None else "")
        + f"peak {record['peak_memory_gib']:.2f} GiB")
    return record


def _log_eval(log, log_fn, step, metrics: dict) -> dict:
    record = {"split": "eval", "step": step, **metrics}
    log.write(record)
    log_fn(f"eval step {step} | " + " ".join(
        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return record
