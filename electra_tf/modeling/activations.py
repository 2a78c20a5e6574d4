"""Exact (erf) GELU as a registered, serializable Keras activation.

ELECTRA's reference code and the released Google/HuggingFace checkpoints use the exact
GELU, 0.5 * x * (1 + erf(x / sqrt(2))); keras-hub's `ElectraBackbone` and Model Garden
default to the tanh approximation. Registering a named function (instead of a lambda)
keeps `get_config()` of every layer that uses it serializable.

Speed (benchmarks/train_step.py, ELECTRA-Small on CPU): autodiff through `tf.nn.gelu`
runs ~10 separate elementwise kernels per call (forward and backward), each a full pass over
a [B*S, 4H] tensor, and under `mixed_bfloat16` TF's bf16 `Erfc` has no vectorised CPU
kernel; together that was ~15% of the fp32 step and ~25% of the bf16 one. Here the value is
computed in float32 with TF's own ops (the formula of `tf.nn.gelu`, cast back to the input
dtype), and the gradient is one XLA-fused kernel (reads x and dy, writes dx). The forward
is deliberately not XLA-compiled: XLA's erfc differs from TF's in the last bits, which
changed short training runs measurably (tests/test_objective.py), and exported
SavedModels/TFLite files should hold no XLA clusters.
"""

import keras
import tensorflow as tf

_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@tf.function(jit_compile=True)
def _gelu_exact_grad(x, dy):
    """dGELU/dx * dy = dy * (Phi(x) + x * phi(x)), fused by XLA, computed in float32."""
    xf = tf.cast(x, tf.float32)
    cdf = 0.5 * tf.math.erfc(-xf * _SQRT_HALF)
    pdf = tf.exp(-0.5 * xf * xf) * _INV_SQRT_2PI
    return tf.cast(tf.cast(dy, tf.float32) * (cdf + xf * pdf), x.dtype)


@tf.custom_gradient
def _gelu_exact(x):
    xf = tf.cast(x, tf.float32)
    # The formula of tf.nn.gelu(approximate=False): 0.5 * x * erfc(-x / sqrt(2)).
    y = tf.cast(0.5 * xf * tf.math.erfc(-xf * _SQRT_HALF), x.dtype)

    def grad(dy):
        return _gelu_exact_grad(x, dy)

    return y, grad


@keras.saving.register_keras_serializable(package="electra_tf")
def gelu_exact(x):
    """Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2))).

    Args:
        x: a float tensor.

    Returns:
        A tensor of the same shape and dtype as `x` (computed in float32).
    """
    return _gelu_exact(tf.convert_to_tensor(x))
