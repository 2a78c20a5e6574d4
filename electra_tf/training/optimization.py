"""Optimizers, learning-rate schedule and precision set-up for ELECTRA pretraining (SPEC 5).

The reference (`model/optimization.py` of google-research/electra) trains with Adam plus
decoupled weight decay and *no* bias correction, clips gradients by global norm 1.0, and runs a
linear warmup and a linear decay together from step 0. Keras 3's `AdamW` always bias-corrects
and its `exclude_from_weight_decay(var_names=...)` matches the short variable name (`gamma`,
`bias`), which cannot tell a LayerNorm `gamma` by its layer; so `AdamWeightDecay` below
overrides `update_step` and decides exclusion once per variable from its full Keras `path`
(`.../self_attention_layer_norm/gamma`). Everything else (gradient accumulation, EMA,
checkpointable slots, tf.distribute updates, dynamic loss scaling) is Keras 3's own machinery,
with two fixes for custom loops under a strategy: gradients are summed across replicas before
clipping and before the loss-scale overflow check, and gradient accumulation is a small helper
(`GradientAccumulator`) because Keras' built-in one cannot run under MirroredStrategy.

Example:

>>> from electra_tf.config import OptimizerConfig
>>> opt = create_optimizer(OptimizerConfig(warmup_steps=10), train_steps=100)
>>> float(opt.learning_rate)   # step 0: the warmup starts from zero, as in the reference
0.0
"""

from __future__ import annotations

import re
import time
from typing import Iterable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

# Substrings of a variable's path that exclude it from weight decay and from LAMB's layer
# adaptation: the reference's ["LayerNorm", "layer_norm", "bias"] (which also catches the
# generator's `output_bias`). A Keras LayerNormalization's weights are `gamma`/`beta` whatever
# the layer is called, so a last path component of exactly `gamma` or `beta` is excluded too.
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
_NORM_WEIGHT_NAMES = ("gamma", "beta")

PRECISIONS = ("none", "float32", "mixed_bfloat16", "mixed_float16")


def _variable_path(variable) -> str:
    """Full Keras path (`layer/sub_layer/kernel`), falling back to a tf.Variable's name."""
    path = getattr(variable, "path", None) or getattr(variable, "name", "")
    return path.split(":")[0]


def is_excluded(path: str, patterns: Sequence[str] = EXCLUDE_FROM_WEIGHT_DECAY) -> bool:
    """Whether a variable path matches an exclusion pattern (weight decay / layer adaptation).

    Args:
        path: the variable's Keras path, e.g. `discriminator/transformer_layer_0/.../gamma`.
        patterns: regular expressions searched for anywhere in the path.
    """
    if path.rsplit("/", 1)[-1] in _NORM_WEIGHT_NAMES:
        return True
    return any(re.search(p, path) for p in patterns)


@keras.saving.register_keras_serializable(package="electra_tf")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Reference schedule: lr * (1 - step/total)^power * min(1, step/warmup).

    Warmup and polynomial decay run together from step 0 (reference `optimization.py`: a
    `polynomial_decay` to 0 multiplied by a linear warmup factor), and the rate stays 0 after
    `total_steps`.

    Args:
        learning_rate: peak learning rate.
        warmup_steps: steps of the linear warmup factor; 0 disables warmup.
        total_steps: step at which the rate reaches 0.
        power: exponent of the decay (1.0 = linear).

    Example:

    >>> s = LinearWarmupDecay(1e-3, warmup_steps=10, total_steps=100)
    >>> round(float(s(5)), 7), round(float(s(50)), 7)
    (0.000475, 0.0005)
    """

    def __init__(self, learning_rate, warmup_steps, total_steps, power=1.0):
        if total_steps < 1:
            raise ValueError(f"LinearWarmupDecay: total_steps={total_steps} must be >= 1")
        if warmup_steps < 0:
            raise ValueError(f"LinearWarmupDecay: warmup_steps={warmup_steps} must be >= 0")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.power = float(power)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.minimum(step / float(self.total_steps), 1.0)
        decay = ops.power(1.0 - progress, self.power)
        if self.warmup_steps > 0:
            decay = decay * ops.minimum(1.0, step / float(self.warmup_steps))
        return self.learning_rate * decay

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "power": self.power,
        }


@keras.saving.register_keras_serializable(package="electra_tf")
class AdamWeightDecay(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay, without bias correction by default (SPEC 5).

    update = m / (sqrt(v) + epsilon) + weight_decay_rate * param; param -= lr * update, with
    m, v the plain exponential moving averages of the reference `AdamWeightDecayOptimizer`.
    `bias_correction=True` divides m and v by (1 - beta^t), i.e. standard AdamW.

    Variables whose path matches `exclude_from_weight_decay` (LayerNorm, biases) get no decay.
    If Keras' own `gradient_accumulation_steps` is used (one device only), the schedule and
    the bias correction see the number of *applied* updates, not of micro-batches. Under a
    tf.distribute strategy `apply` sums the gradients across replicas *before* global-norm
    clipping, so the clip sees the true global gradient (Keras' default clips each
    replica's partial gradient).

    Args:
        learning_rate: float or `LearningRateSchedule`.
        weight_decay_rate: decoupled weight decay coefficient.
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: added to sqrt(v).
        bias_correction: divide the moments by (1 - beta^t) (off in the reference).
        exclude_from_weight_decay: path patterns exempt from decay.
        name: optimizer name.
        **kwargs: base Keras optimizer options (`global_clipnorm`,
            `gradient_accumulation_steps`, `use_ema`, ...). `weight_decay` is not accepted:
            use `weight_decay_rate`.

    Example:

    >>> opt = AdamWeightDecay(learning_rate=1e-3, weight_decay_rate=0.01, global_clipnorm=1.0)
    """

    _layer_adaptation = False

    def __init__(
        self,
        learning_rate=1e-3,
        weight_decay_rate=0.0,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        bias_correction=False,
        exclude_from_weight_decay: Iterable[str] = EXCLUDE_FROM_WEIGHT_DECAY,
        name="adam_weight_decay",
        **kwargs,
    ):
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                f"{type(self).__name__}: pass weight_decay_rate, not weight_decay (Keras "
                "applies weight_decay by short variable name and cannot exclude LayerNorm)"
            )
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.bias_correction = bool(bias_correction)
        self.exclude_patterns = tuple(exclude_from_weight_decay)
        self.sum_across_replicas = True

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        # Decided once from the Keras path: inside a strategy update, `update_step` only sees
        # the underlying tf.Variable, whose name has lost the layer path.
        self._excluded = [is_excluded(_variable_path(v), self.exclude_patterns)
                          for v in var_list]

    def uses_weight_decay(self, variable) -> bool:
        """Whether `variable` (one the optimizer was built on) is decayed.

        Args:
            variable: a Keras or tf.Variable of the model.
        """
        return self.weight_decay_rate > 0 and not self._excluded[
            self._get_variable_index(variable)]

    def _get_current_learning_rate(self):
        # Keras evaluates schedules at the micro-batch counter `_iterations`; with gradient
        # accumulation the schedule must advance once per applied update.
        if isinstance(self._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            return self._learning_rate(self.iterations)
        return super()._get_current_learning_rate()

    def apply(self, grads, trainable_variables=None):
        # Under a tf.distribute strategy, sum the replicas' gradients before anything else
        # (Keras sums them only after clipping, which clips each replica's partial gradient).
        # A wrapping `LossScaleOptimizer` (below) has summed them already.
        if self.sum_across_replicas:
            grads = sum_across_replicas(grads)
        return super().apply(grads, trainable_variables)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars  # summed in `apply` (or by the wrapping loss-scale optimizer)

    def _adam_direction(self, gradient, variable):
        """Updates the moments and returns m / (sqrt(v) + eps) (+ decay), before the lr."""
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        m_t, v_t = m, v
        if self.bias_correction:
            step = ops.cast(self.iterations + 1, dtype)
            m_t = m / (1.0 - ops.power(ops.cast(self.beta_1, dtype), step))
            v_t = v / (1.0 - ops.power(ops.cast(self.beta_2, dtype), step))
        update = m_t / (ops.sqrt(v_t) + self.epsilon)
        if self.uses_weight_decay(variable):
            update = update + self.weight_decay_rate * variable
        return update

    def update_step(self, gradient, variable, learning_rate):
        """Applies one update to `variable`.

        Args:
            gradient: the (clipped, replica-summed) gradient.
            variable: the variable to update.
            learning_rate: the current learning rate.
        """
        update = self._adam_direction(gradient, variable)
        self.assign_sub(variable, ops.cast(learning_rate, variable.dtype) * update)

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update({
            "weight_decay_rate": self.weight_decay_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "bias_correction": self.bias_correction,
            "exclude_from_weight_decay": list(self.exclude_patterns),
        })
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class Lamb(AdamWeightDecay):
    """LAMB (You et al. 2019): Adam direction plus decay, scaled per variable by a trust ratio.

    ratio = ||param|| / ||update|| (1 where either norm is 0); param -= ratio * lr * update.
    Variables matching `exclude_from_layer_adaptation` (LayerNorm, biases, SPEC 5) use ratio 1
    and, via `exclude_from_weight_decay`, no decay. Keras' own `keras.optimizers.Lamb` has no
    exclusion and no decoupled decay, hence this subclass. Bias correction is on by default,
    as in the LAMB paper.

    Args:
        exclude_from_layer_adaptation: path patterns that keep trust ratio 1 (defaults to
            the weight-decay exclusions).
        bias_correction: divide the moments by (1 - beta^t).
        **kwargs: as for `AdamWeightDecay`.

    Example:

    >>> opt = Lamb(learning_rate=1e-3, weight_decay_rate=0.01)
    """

    def __init__(self, *, exclude_from_layer_adaptation: Optional[Iterable[str]] = None,
                 bias_correction=True, name="lamb", **kwargs):
        super().__init__(bias_correction=bias_correction, name=name, **kwargs)
        self.layer_adaptation_patterns = tuple(
            exclude_from_layer_adaptation if exclude_from_layer_adaptation is not None
            else self.exclude_patterns)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._adapted = [not is_excluded(_variable_path(v), self.layer_adaptation_patterns)
                         for v in var_list]

    def uses_layer_adaptation(self, variable) -> bool:
        """Whether `variable` gets the trust ratio (False: ratio 1).

        Args:
            variable: a Keras or tf.Variable of the model.
        """
        return self._adapted[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        update = self._adam_direction(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        if self.uses_layer_adaptation(variable):
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where(
                ops.logical_and(w_norm > 0, u_norm > 0), w_norm / ops.maximum(u_norm, 1e-30),
                1.0)
            lr = lr * ratio
        self.assign_sub(variable, lr * update)

    def get_config(self):
        config = super().get_config()
        config["exclude_from_layer_adaptation"] = list(self.layer_adaptation_patterns)
        return config


def sum_across_replicas(grads):
    """Sums per-replica gradients in a replica context with several replicas (else as is).

    IndexedSlices (embedding lookups) are densified: the Adam moments are dense anyway.

    Args:
        grads: list of gradient tensors (None allowed).
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return list(grads)
    dense = [tf.convert_to_tensor(g) for g in grads if g is not None]
    summed = iter(ctx.all_reduce(tf.distribute.ReduceOp.SUM, dense))
    return [None if g is None else next(summed) for g in grads]


@keras.saving.register_keras_serializable(package="electra_tf")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' dynamic loss scaling, made consistent across replicas.

    Keras checks the gradients for inf/NaN on each replica *before* they are summed and, in
    a custom loop under MirroredStrategy, acts on replica 0's verdict only: an overflow on
    another replica would then be applied. Here the gradients are summed first, so every
    replica sees the same (summed) gradients and takes the same skip-or-apply decision.

    Args:
        inner_optimizer: the `AdamWeightDecay`/`Lamb` to wrap.
        initial_scale: starting loss scale.
        dynamic_growth_steps: finite steps after which the scale doubles.
        **kwargs: as for `keras.optimizers.LossScaleOptimizer`.

    Example:

    >>> opt = LossScaleOptimizer(AdamWeightDecay(1e-3), initial_scale=2.0 ** 15)
    """

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000,
                 **kwargs):
        super().__init__(inner_optimizer, initial_scale=initial_scale,
                         dynamic_growth_steps=dynamic_growth_steps, **kwargs)
        if hasattr(inner_optimizer, "sum_across_replicas"):
            inner_optimizer.sum_across_replicas = False  # this wrapper sums instead

    def apply(self, grads, trainable_variables=None):
        return super().apply(sum_across_replicas(grads), trainable_variables)


class GradientAccumulator:
    """Accumulates micro-batch gradients per replica; `apply` applies their mean.

    Keras 3's `gradient_accumulation_steps` puts the update (which synchronises replicas)
    inside a `cond`, which tf.distribute refuses in a custom loop under MirroredStrategy
    ("merge_call called while defining a new graph"), so the accumulation is done here and
    the train loop decides in Python when to apply. Create it inside the strategy scope after
    building the optimizer. The sums are per-replica (SyncOnRead) variables; replicas
    exchange gradients only once per update, in `optimizer.apply`. Accumulate gradients of the
    *scaled* loss under mixed_float16: an overflow in any micro-batch makes the loss-scale
    optimizer skip the whole update and halve the scale. The sums are not checkpointed:
    save checkpoints only between updates, when they are zero.

    Args:
        optimizer: the optimizer from `create_optimizer`.
        variables: the trainable variables, in the order the gradients come.
        steps: micro-batches per update.

    Example:

    >>> # in strategy.run: accumulator.accumulate(tape.gradient(loss, variables)) per micro
    >>> # batch, then accumulator.apply() once every `steps` micro-batches.
    """

    def __init__(self, optimizer, variables, steps: int):
        if steps < 1:
            raise ValueError(f"GradientAccumulator: steps={steps} must be >= 1")
        self.optimizer = optimizer
        self.variables = list(variables)
        self.steps = int(steps)
        self._sums = [
            tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                        synchronization=tf.VariableSynchronization.ON_READ,
                        aggregation=tf.VariableAggregation.SUM,
                        name=f"grad_accum_{i}")
            for i, v in enumerate(self.variables)
        ]

    def accumulate(self, grads):
        """Adds one micro-batch's gradients to this replica's sums.

        Args:
            grads: gradients aligned with `variables` (None entries are skipped).
        """
        for total, g in zip(self._sums, grads):
            if g is not None:
                total.assign_add(tf.cast(tf.convert_to_tensor(g), total.dtype))

    def apply(self):
        """Applies the mean of the accumulated gradients and zeroes the sums."""
        mean = [total.read_value() / float(self.steps) for total in self._sums]
        self.optimizer.apply(mean, self.variables)
        for total in self._sums:
            total.assign(tf.zeros_like(total))


def configure_precision(name: str) -> keras.mixed_precision.DTypePolicy:
    """Sets the Keras global dtype policy from `training.mixed_precision`.

    `mixed_bfloat16` needs no loss scaling; `mixed_float16` does (see `create_optimizer`).

    Args:
        name: none | float32 | mixed_bfloat16 | mixed_float16.

    Returns:
        The policy now in force.
    """
    if name not in PRECISIONS:
        raise ValueError(
            f"mixed_precision={name!r} is not supported; use one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy("float32" if name == "none" else name)
    return keras.mixed_precision.global_policy()


def create_optimizer(opt_cfg, train_steps: int, *, mixed_precision: str = "none",
                     initial_loss_scale: float = 2.0 ** 15,
                     dynamic_growth_steps: int = 2000) -> keras.optimizers.Optimizer:
    """Builds the pretraining optimizer from an `OptimizerConfig` (SPEC 5).

    Build it (or call `optimizer.build(model.trainable_variables)`) inside the strategy scope
    before the first step (keras-team/keras#23085). Under `mixed_float16` the result is a
    `keras.optimizers.LossScaleOptimizer`; the train step must call
    `optimizer.scale_loss(loss)` before taking gradients (it unscales them itself).
    Gradient accumulation is `GradientAccumulator` (Keras' built-in one fails under
    MirroredStrategy in a custom loop).

    Args:
        opt_cfg: `electra_tf.config.OptimizerConfig`.
        train_steps: optimizer updates over the whole run (the schedule's decay length).
        mixed_precision: none | float32 | mixed_bfloat16 | mixed_float16.
        initial_loss_scale: starting loss scale for mixed_float16.
        dynamic_growth_steps: finite steps after which the loss scale doubles.

    Returns:
        A Keras optimizer.
    """
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision={mixed_precision!r} is not supported; use one of "
                         f"{', '.join(PRECISIONS)}")
    schedule = LinearWarmupDecay(opt_cfg.learning_rate, opt_cfg.warmup_steps, train_steps,
                                 power=opt_cfg.lr_decay_power)
    common = dict(
        learning_rate=schedule,
        weight_decay_rate=opt_cfg.weight_decay,
        beta_1=opt_cfg.beta_1,
        beta_2=opt_cfg.beta_2,
        epsilon=opt_cfg.epsilon,
        global_clipnorm=opt_cfg.clip_norm if opt_cfg.clip_norm > 0 else None,
    )
    if opt_cfg.name == "adamw":
        optimizer = AdamWeightDecay(bias_correction=opt_cfg.bias_correction, **common)
    elif opt_cfg.name == "lamb":
        optimizer = Lamb(**common)
    else:
        raise ValueError(f"optimizer.name={opt_cfg.name!r} is not supported; use adamw | lamb")
    if mixed_precision == "mixed_float16":
        optimizer = LossScaleOptimizer(
            optimizer, initial_scale=initial_loss_scale,
            dynamic_growth_steps=dynamic_growth_steps)
    return optimizer


# ---------------------------------------------------------------------------------------------
# Throughput accounting (used by the trainer's MFU log line and by benchmarks/train_step.py).

def _encoder_params(hidden: int, ffn: int, layers: int) -> int:
    """Weights of `layers` post-LN BERT blocks: QKV+output, FFN, two LayerNorms."""
    attention = 4 * (hidden * hidden + hidden)
    feedforward = hidden * ffn + ffn + ffn * hidden + hidden
    return layers * (attention + feedforward + 2 * 2 * hidden)


def non_embedding_params(cfg) -> dict:
    """Non-embedding weight counts of the discriminator and generator (SPEC 1-2).

    Embedding tables (word, position, token type) are excluded, as is the generator's
    output projection onto the tied word embeddings; projections, heads and the embedding
    LayerNorm (counted with the discriminator) are included.

    Args:
        cfg: `electra_tf.config.ElectraConfig`.

    Returns:
        dict(discriminator=int, generator=int); generator is 0 for the `mlm` objective.
    """
    m = cfg.model
    e, h = m.embedding_size, m.hidden_size
    disc = _encoder_params(h, m.intermediate_size, m.num_layers)
    disc += (e * h + h) if e != h else 0  # embeddings_project
    disc += h * h + h + h + 1             # discriminator_predictions dense + dense_1
    disc += 2 * e                         # the (shared) embedding LayerNorm
    gen = 0
    if cfg.objective.kind == "electra":
        gh = cfg.generator_hidden_size()
        gen = _encoder_params(gh, cfg.generator_intermediate_size(), cfg.generator_num_layers())
        gen += (e * gh + gh) if e != gh else 0
        gen += gh * e + e + 2 * e + m.vocab_size  # generator_predictions dense, LN, output_bias
    return {"discriminator": disc, "generator": gen}


def model_flops_per_sequence(cfg, seq_length: Optional[int] = None) -> float:
    """Training FLOPs of one sequence: 6 * params * tokens + 12 * layers * seq^2 * hidden.

    Summed over generator and discriminator, with non-embedding parameters
    (`non_embedding_params`); the second term is attention's score and context matmuls
    (forward + backward). This is the nanoGPT/PaLM accounting the trainer logs as MFU.

    Args:
        cfg: `electra_tf.config.ElectraConfig`.
        seq_length: tokens per sequence (default `cfg.data.max_seq_length`).
    """
    s = seq_length or cfg.data.max_seq_length
    params = non_embedding_params(cfg)
    flops = 6.0 * params["discriminator"] * s
    flops += 12.0 * cfg.model.num_layers * s * s * cfg.model.hidden_size
    if params["generator"]:
        flops += 6.0 * params["generator"] * s
        flops += 12.0 * cfg.generator_num_layers() * s * s * cfg.generator_hidden_size()
    return flops


def measure_matmul_peak(dtype: str = "float32", size: int = 2048, seconds: float = 2.0) -> float:
    """Measures this machine's dense matmul throughput in FLOP/s (the MFU denominator).

    Times a jitted chain of `size x size` `tf.linalg.matmul`s in `dtype` on the default
    device and returns the best of several repeats (the least disturbed by other load).

    Args:
        dtype: float32 | bfloat16 | float16.
        size: matrix side.
        seconds: approximate total time to spend measuring.
    """
    a = tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32) / size ** 0.5
    a = tf.cast(a, dtype)
    inner = 4

    @tf.function(jit_compile=False)
    def chain(x):
        for _ in range(inner):
            x = tf.linalg.matmul(x, a)
        return x

    chain(a).numpy()  # build and warm up
    flops_per_call = inner * 2.0 * size ** 3
    best, spent = 0.0, 0.0
    while spent < seconds or best == 0.0:
        start = time.perf_counter()
        chain(a)[0, 0].numpy()  # waits for the result
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, flops_per_call / elapsed)
    return best
