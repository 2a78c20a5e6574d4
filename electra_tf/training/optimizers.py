"""Optimizers for ELECTRA pretraining: the reference's AdamW (no bias correction), LAMB,
and loss scaling that agrees across replicas.

The reference (`model/optimization.py` of google-research/electra) trains with Adam plus
decoupled weight decay and *no* bias correction and clips gradients by global norm 1.0
(docs/architecture.md, "Optimisation"). Keras 3's `AdamW` always bias-corrects and its
`exclude_from_weight_decay(var_names=...)` matches the short variable name (`gamma`, `bias`),
which cannot tell a LayerNorm `gamma` by its layer; so `AdamWeightDecay` below overrides
`update_step` and decides exclusion once per variable from its full Keras `path`
(`.../self_attention_layer_norm/gamma`). Everything else (checkpointable slots, tf.distribute
updates, dynamic loss scaling) is Keras 3's own machinery, with one fix for custom loops
under a strategy: gradients are summed across replicas before clipping and before the
loss-scale overflow check.

Example:

>>> from electra_tf.config import OptimizerConfig
>>> opt = create_optimizer(OptimizerConfig(warmup_steps=10), train_steps=100)
>>> float(opt.learning_rate)   # step 0: the warmup starts from zero, as in the reference
0.0
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Optional, Sequence

import keras
import tensorflow as tf
from keras import ops

from electra_tf.training.precision import PRECISIONS
from electra_tf.training.schedule import LinearWarmupDecay


# Substrings of a variable's path that exclude it from weight decay and from LAMB's layer
# adaptation: the reference's ["LayerNorm", "layer_norm", "bias"] (which also catches the
# generator's `output_bias`). A Keras LayerNormalization's weights are `gamma`/`beta` whatever
# the layer is called, so a last path component of exactly `gamma` or `beta` is excluded too.
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
_NORM_WEIGHT_NAMES = ("gamma", "beta")


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
class AdamWeightDecay(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay, without bias correction by default (docs/architecture.md, "Optimisation").

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
        learning_rate_multiplier: optional function of a variable's Keras path giving a
            factor on its learning rate (layer-wise decay in fine-tuning); None: 1.0.
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
        learning_rate_multiplier: Optional[Callable[[str], float]] = None,
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
        self.learning_rate_multiplier = learning_rate_multiplier
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
        rule = self.learning_rate_multiplier
        self._lr_multipliers = [1.0 if rule is None else float(rule(_variable_path(v)))
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
        self.assign_sub(variable, self._variable_learning_rate(learning_rate, variable) * update)

    def _variable_learning_rate(self, learning_rate, variable):
        """The learning rate times this variable's multiplier (layer-wise decay)."""
        lr = ops.cast(learning_rate, variable.dtype)
        multiplier = self._lr_multipliers[self._get_variable_index(variable)]
        return lr if multiplier == 1.0 else lr * multiplier

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
    Variables matching `exclude_from_layer_adaptation` (LayerNorm, biases; docs/architecture.md, "Optimisation") use ratio 1
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
        lr = self._variable_learning_rate(learning_rate, variable)
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


def create_optimizer(opt_cfg, train_steps: int, *, mixed_precision: str = "none",
                     initial_loss_scale: float = 2.0 ** 15,
                     dynamic_growth_steps: int = 2000,
                     learning_rate_multiplier: Optional[Callable[[str], float]] = None,
                     ) -> keras.optimizers.Optimizer:
    """Builds the pretraining optimizer from an `OptimizerConfig` (docs/architecture.md, "Optimisation").

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
        learning_rate_multiplier: per-variable learning-rate factor by Keras path
            (`layerwise_decay.learning_rate_multiplier` in fine-tuning).

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
        learning_rate_multiplier=learning_rate_multiplier,
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
