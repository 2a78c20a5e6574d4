"""One pretraining step, the loop of `steps_per_loop` steps and the eval step, on explicit state.

This is the only definition of a training step: `trainer.train` runs it, and
`benchmarks/train_step.py` times the very same `PretrainingStep.train_loop`. The shape
follows docs/architecture.md ("Training step"):

- `strategy.run` inside a `tf.function` that runs up to `steps_per_loop` steps (a
  `tf.range` loop), not `model.fit` (Keras 3's fit fails under MultiWorkerMirroredStrategy,
  keras-team/keras#20585);
- per-replica input: each worker reads one plain, checkpointable tf.data iterator at the
  per-replica batch size, whose consecutive batches go to the worker's replicas in order
  (the layout of `strategy.distribute_datasets_from_function`);
- each replica's loss is divided by the number of replicas and the optimizer sums the
  gradients across replicas before clipping, so one device and N devices take the same step
  on the same global batch;
- masks and samples are drawn from a per-step seed taken from a checkpointed
  `tf.random.Generator` on the host, folded with the *global* index of each seed group, so
  they do not depend on how a step's examples are split over replicas or micro-batches.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import tensorflow as tf

# Per-step scalars reduced across replicas (mean) and accumulated over a log interval.
TRAIN_METRICS = ("loss", "mlm_loss", "disc_loss", "masked_lm_accuracy", "disc_accuracy")
EVAL_METRICS = ("loss", "mlm_loss", "disc_loss", "masked_lm_accuracy",
                "sampled_masked_lm_accuracy", "disc_accuracy", "disc_precision", "disc_recall")


class BatchLayoutError(ValueError):
    """The global batch cannot be split as configured (one-line message)."""


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """How one global step's examples are split over replicas, micro-batches and seed groups.

    Args:
      num_replicas: replicas in sync (all workers).
      num_local_replicas: replicas of this worker (its pipeline feeds them in turn).
      per_replica_batch: examples per replica per micro-batch.
      seed_group_size: examples sharing one masking seed (divides `per_replica_batch`).
      micro_batches: gradient-accumulation micro-batches per optimizer update.
    """

    num_replicas: int
    num_local_replicas: int
    per_replica_batch: int
    seed_group_size: int
    micro_batches: int = 1

    @property
    def groups_per_replica(self) -> int:
        return self.per_replica_batch // self.seed_group_size

    @classmethod
    def plan(cls, *, global_batch: int, num_replicas: int, num_local_replicas: int,
             seed_group_size: int = 0, micro_batches: int = 1, source: str = "config"):
        """Splits `global_batch` (per micro-batch) over replicas and seed groups.

        Args:
          global_batch: `training.batch_size`.
          num_replicas: replicas in sync.
          num_local_replicas: replicas of this worker.
          seed_group_size: `training.seed_group_size` (0: the per-replica batch).
          micro_batches: `training.grad_accum_steps`.
          source: where the values came from (named in errors).
        """
        if global_batch % num_replicas:
            raise BatchLayoutError(
                f"{source}: training.batch_size={global_batch} is not divisible by the "
                f"{num_replicas} replicas of the strategy; use a multiple of {num_replicas}")
        per_replica = global_batch // num_replicas
        group = seed_group_size or per_replica
        if per_replica % group:
            raise BatchLayoutError(
                f"{source}: training.seed_group_size={group} does not divide the per-replica "
                f"batch {per_replica}; use a divisor of it (or 0)")
        return cls(num_replicas, num_local_replicas, per_replica, group, micro_batches)


def seed_for_group(step_seed, group_index):
    """Stateless seed of one group of examples: fold the global group index into the step seed.

    Masks depend only on (step, global example group), never on which replica holds the
    group, so splitting the same global batch over more replicas draws the same masks.

    Args:
      step_seed: int64 [2] seed of the step.
      group_index: global index of the group within the step.
    """
    return tf.random.experimental.stateless_fold_in(step_seed, tf.cast(group_index, tf.int64))


class PretrainingStep:
    """The ELECTRA train and eval steps of one model under one strategy.

    Everything the step touches is passed in: the model, the optimizer (and gradient
    accumulator), the step counter and the masking RNG. Create it inside nothing in
    particular; the variables must already exist under `strategy.scope()`.

    Args:
      model: an `ElectraPretrainer` (its `compute_losses` is the objective).
      optimizer: built on `model.trainable_variables` inside the strategy scope.
      strategy: the `tf.distribute.Strategy` the variables were created under.
      layout: the `BatchLayout` of a step.
      step: int64 `tf.Variable` counting optimizer updates (incremented by the loop).
      rng: the `tf.random.Generator` the per-step seeds are drawn from (host side, so the
        replica step holds no host ops: TPU and XLA friendly).
      accumulator: a `GradientAccumulator` when `layout.micro_batches > 1`.
      jit_compile: XLA-compile each replica's forward and backward pass.
      eval_seed: int [2] seed of the (fixed) evaluation masks.
    """

    def __init__(self, model, optimizer, strategy, layout: BatchLayout, *, step, rng,
                 accumulator=None, jit_compile: bool = False, eval_seed=(0, 0x5EED)):
        if layout.micro_batches > 1 and accumulator is None:
            raise ValueError("PretrainingStep: micro_batches > 1 needs a GradientAccumulator")
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.layout = layout
        self.step = step
        self.rng = rng
        self.accumulator = accumulator
        self.eval_seed = tf.constant(eval_seed, tf.int64)
        self._compute_gradients = tf.function(self.compute_gradients, jit_compile=jit_compile)
        self.train_loop = tf.function(self._train_loop)
        self.eval_step = tf.function(self._eval_step)

    # --- per replica ----------------------------------------------------------------------

    def _split_groups(self, batch, step_seed, first_group, training):
        """compute_losses on each seed group of a replica's batch."""
        size = self.layout.seed_group_size
        outputs = []
        for g in range(self.layout.groups_per_replica):
            part = {k: v[g * size:(g + 1) * size] for k, v in batch.items()}
            seed = seed_for_group(step_seed, first_group + g)
            outputs.append(self.model.compute_losses(part, seed, training=training))
        return outputs

    def compute_gradients(self, batch, step_seed, first_group):
        """Loss and gradients of one replica's batch (XLA-compilable: no host ops).

        Args:
          batch: dict of int [per_replica_batch, S] tensors.
          step_seed: int64 [2] seed of the step.
          first_group: global index of this batch's first seed group within the step
            (counting over micro-batches and replicas).

        Returns:
          (dense gradients aligned with `model.trainable_variables`, dict of TRAIN_METRICS).
        """
        trainable = self.model.trainable_variables
        groups = self.layout.groups_per_replica
        with tf.GradientTape() as tape:
            outputs = self._split_groups(batch, step_seed, first_group, training=True)
            metrics = {k: tf.add_n([o[k] for o in outputs]) / groups for k in TRAIN_METRICS}
            # Each replica's loss is a mean over its examples; dividing by the replica count
            # makes the optimizer's cross-replica gradient *sum* the global-batch mean.
            scaled = self.optimizer.scale_loss(metrics["loss"] / self.layout.num_replicas)
        grads = tape.gradient(scaled, trainable)
        # Dense gradients: embedding lookups give IndexedSlices with one row per token, and
        # Keras' global norm of IndexedSlices squares the rows before summing duplicates,
        # so the clipping norm would be wrong (and differ between one and many replicas).
        # The Adam update is dense anyway.
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, trainable)]
        return grads, metrics

    def _replica_step(self, batch, step_seed, micro, apply_update):
        layout = self.layout
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        first_group = (micro * layout.num_replicas + replica_id) * layout.groups_per_replica
        grads, metrics = self._compute_gradients(batch, step_seed, tf.cast(first_group, tf.int64))
        trainable = self.model.trainable_variables
        if self.accumulator is None:
            self.optimizer.apply(grads, trainable)
        else:
            self.accumulator.accumulate(grads)
            if apply_update:  # Python bool: the last micro-batch of the step
                self.accumulator.apply()
        metrics["tokens"] = tf.cast(tf.reduce_sum(batch["padding_mask"]), tf.float32)
        return metrics

    # --- cross replica --------------------------------------------------------------------

    def next_per_replica(self, iterator):
        """The next batch of each local replica, from one worker pipeline, in order."""
        num_local = self.layout.num_local_replicas
        batches = [next(iterator) for _ in range(num_local)]
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: batches[ctx.replica_id_in_sync_group % num_local])

    def _train_loop(self, iterator, num_steps):
        """Runs `num_steps` optimizer updates; returns (interval sums, all finite).

        The sums are [len(TRAIN_METRICS) + 1]: each metric summed over the steps (each step's
        value a mean over replicas and micro-batches), then the tokens processed.
        """
        micro_batches = self.layout.micro_batches
        strategy = self.strategy
        totals = tf.zeros([len(TRAIN_METRICS) + 1], tf.float32)
        finite = tf.constant(True)
        for _ in tf.range(num_steps):
            step_seed = self.rng.make_seeds(1)[:, 0]
            values = []
            for micro in range(micro_batches):
                out = strategy.run(
                    functools.partial(self._replica_step, micro=micro,
                                      apply_update=micro == micro_batches - 1),
                    args=(self.next_per_replica(iterator), step_seed))
                micro_values = [strategy.reduce(tf.distribute.ReduceOp.MEAN, out[k], axis=None)
                                / micro_batches for k in TRAIN_METRICS]
                micro_values.append(
                    strategy.reduce(tf.distribute.ReduceOp.SUM, out["tokens"], axis=None))
                values.append(tf.stack(micro_values))
            values = tf.add_n(values)
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(values)))
            totals += values
            self.step.assign_add(1)
        return totals, finite

    def _replica_eval(self, batch, step_seed):
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        groups = self.layout.groups_per_replica
        outputs = self._split_groups(batch, step_seed, replica_id * groups, training=False)
        scalars = {k: tf.add_n([o[k] for o in outputs]) / groups for k in EVAL_METRICS}
        arrays = {k: tf.concat([o[k] for o in outputs], 0)
                  for k in ("disc_probs", "disc_labels", "disc_weights")}
        return scalars, arrays

    def _eval_step(self, iterator, step_index):
        step_seed = seed_for_group(self.eval_seed, step_index)
        scalars, arrays = self.strategy.run(
            self._replica_eval, args=(self.next_per_replica(iterator), step_seed))
        scalars = {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                   for k, v in scalars.items()}
        arrays = {k: self.strategy.gather(v, axis=0) for k, v in arrays.items()}
        return scalars, arrays

    def evaluate(self, dataset, num_steps: int) -> dict:
        """EVAL_METRICS and `disc_auc` over the first `num_steps` batches of `dataset`.

        The dataset is read from its start each time and the masking seeds are fixed, so
        successive evaluations of one run differ only by the weights.

        Args:
          dataset: a per-replica-batch tf.data pipeline (not shuffled).
          num_steps: batches per local replica to evaluate.
        """
        iterator = iter(dataset)
        auc = keras.metrics.AUC(num_thresholds=1000)
        sums = {k: 0.0 for k in EVAL_METRICS}
        for i in range(num_steps):
            scalars, arrays = self.eval_step(iterator, tf.constant(i, tf.int64))
            for k in EVAL_METRICS:
                sums[k] += float(scalars[k])
            # AUC over every non-pad token of all eval steps (reference metric_fn).
            auc.update_state(tf.reshape(arrays["disc_labels"], [-1]),
                             tf.reshape(arrays["disc_probs"], [-1]),
                             sample_weight=tf.reshape(arrays["disc_weights"], [-1]))
        metrics = {k: v / num_steps for k, v in sums.items()}
        metrics["disc_auc"] = float(auc.result())
        return metrics


def create_train_state(cfg, tokens, strategy) -> dict:
    """The model, optimizer, accumulator and step counter of a run, under `strategy.scope()`.

    The optimizer is built on the trainable variables inside the scope before the first step
    (keras-team/keras#23085).

    Args:
      cfg: the run's `ElectraConfig` (`model.vocab_size` set from the vocabulary).
      tokens: the vocabulary (special token ids).
      strategy: the run's strategy.

    Returns:
      dict(model=, optimizer=, accumulator= (None without accumulation), step=).
    """
    from electra_tf import model_loading
    from electra_tf.training import accumulation, optimizers

    t = cfg.training
    with strategy.scope():
        model = model_loading.build_pretrainer(cfg, tokens)
        optimizer = optimizers.create_optimizer(
            cfg.optimizer, t.train_steps, mixed_precision=t.mixed_precision)
        optimizer.build(model.trainable_variables)
        accumulator = None
        if t.grad_accum_steps > 1:
            # A step is one optimizer update over grad_accum_steps micro-batches.
            accumulator = accumulation.GradientAccumulator(
                optimizer, model.trainable_variables, t.grad_accum_steps)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    return dict(model=model, optimizer=optimizer, accumulator=accumulator, step=step)
