"""A faster Keras `Dropout` for CPU training: a 16-bit-per-decision keep mask.

Keras' TF backend runs `tf.nn.experimental.stateless_dropout`: one Philox uniform per
element in the *input* dtype (bf16 uniforms have no fast CPU path), a compare and a select,
and its gradient another select. On ELECTRA-Small (benchmarks/train_step.py) that was ~10%
of an fp32 step and ~20% of a bf16 one. Here one Philox uint32 gives two 16-bit draws, the
keep mask is `draw >= round(rate * 2^16)` and the output is `x * mask * 1/(1-rate)` (the
gradient is one multiply). The drop probability is `round(rate * 65536) / 65536` (0.1 ->
0.1000061; Keras' own bf16 path draws 7-bit uniforms, i.e. 13/128 = 0.1016). Randomness
still comes from the layer's `SeedGenerator` (one `next()` per call, as Keras does), so
checkpointed seed states and determinism are unchanged. No library layer does this.
"""

import keras
import tensorflow as tf


def fast_dropout(inputs, rate, seed):
    """Inverted dropout with a 16-bit Philox mask (see module docstring).

    Args:
        inputs: float tensor.
        rate: drop probability in (0, 1).
        seed: int [2] stateless seed.

    Returns:
        `inputs * keep / (1 - rate)`, same shape and dtype.
    """
    inputs = tf.convert_to_tensor(inputs)
    shape = tf.shape(inputs)
    size = tf.size(inputs)
    bits = tf.random.stateless_uniform(
        [(size + 1) // 2], seed=tf.cast(seed, tf.int64), minval=None, maxval=None,
        dtype=tf.uint32)
    # Read as int16 (uniform over -32768..32767): the signed compare has a vectorised CPU
    # kernel, the uint16 one is 2x slower. Drop iff draw < threshold - 32768.
    draws = tf.reshape(tf.bitcast(bits, tf.int16), [-1])
    static_size = inputs.shape.num_elements()
    if static_size is None or static_size % 2:
        draws = draws[:size]
    threshold = tf.constant(min(int(round(rate * 65536)), 65535) - 32768, tf.int16)
    keep = tf.reshape(draws >= threshold, shape)
    scale = tf.cast(keep, inputs.dtype) * tf.constant(1.0 / (1.0 - rate), inputs.dtype)
    return inputs * scale


@keras.saving.register_keras_serializable(package="electra_tf")
class FastDropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose training-time mask is `fast_dropout`'s.

    Same arguments, weights-free state (`seed_generator`) and config as Keras' Dropout;
    layers with a `noise_shape` fall back to Keras' implementation.

    Args:
        rate: drop probability.
        **kwargs: as for `keras.layers.Dropout`.

    Example:

    >>> FastDropout(0.1)(np.ones((2, 8), "float32"), training=True).shape
    (2, 8)
    """

    def call(self, inputs, training=False):
        if not training or self.rate <= 0 or self.noise_shape is not None or self.rate >= 1:
            return super().call(inputs, training=training)
        return fast_dropout(inputs, self.rate, self.seed_generator.next())


def use_fast_dropout(model):
    """Makes every plain `keras.layers.Dropout` inside `model` a `FastDropout`, in place.

    keras-hub's TransformerEncoder and Keras' MultiHeadAttention create their Dropout layers
    themselves, so they are switched after building (the class only; the layer's rate,
    name and seed state stay, so checkpoints and determinism are unaffected).

    Args:
        model: a built Keras layer or model.

    Returns:
        The number of layers switched.
    """
    switched = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if type(layer) is keras.layers.Dropout:
            layer.__class__ = FastDropout
            switched += 1
    return switched
