"""The reference learning-rate schedule: linear warmup and polynomial decay, together."""

import keras
from keras import ops


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
