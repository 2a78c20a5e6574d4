"""Gradient accumulation that works in a custom loop under tf.distribute strategies."""

import tensorflow as tf


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
