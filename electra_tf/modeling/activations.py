"""Exact (erf) GELU as a registered, serializable Keras activation.

ELECTRA's reference code and the released Google/HuggingFace checkpoints use the exact
GELU, 0.5 * x * (1 + erf(x / sqrt(2))); keras-hub's `ElectraBackbone` and Model Garden
default to the tanh approximation. Registering a named function (instead of a lambda)
keeps `get_config()` of every layer that uses it serializable.
"""

import keras


@keras.saving.register_keras_serializable(package="electra_tf")
def gelu_exact(x):
    """Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2))).

    Args:
        x: a float tensor.

    Returns:
        A tensor of the same shape and dtype as `x`.
    """
    return keras.activations.gelu(x, approximate=False)
