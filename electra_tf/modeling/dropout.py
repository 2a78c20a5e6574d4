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
    TensorShape([2, 8])
    """

    def call(self, inputs, training=False):
        if not training or self.rate <= 0 or self.noise_shape is not None or self.rate >= 1:
            return super().call(inputs, training=training)
        return fast_dropout(inputs, self.rate, self.seed_generator.next())


# The Dropout layers keras-hub's `TransformerEncoder.build` creates itself (keras-hub 0.32;
# Keras 3 `MultiHeadAttention` makes `_dropout_layer`): (owner attribute path, attribute).
_TRANSFORMER_DROPOUTS = (
    ((), "_self_attention_dropout"),
    ((), "_feedforward_dropout"),
    (("_self_attention_layer",), "_dropout_layer"),
)


def use_fast_dropout_in_transformer_layer(layer) -> int:
    """Replaces the three Dropout layers inside a built keras-hub `TransformerEncoder`.

    keras-hub builds its attention-probability, attention-output and feed-forward Dropout
    layers inside `build()`, so they cannot be passed in. This is the one place where the
    package reaches into keras-hub's internals: it replaces exactly those three attributes
    (same rate and name) through Keras' layer tracker, and raises if keras-hub's layout is
    not the one this was written for (Keras and keras-hub are pinned to tested minor
    versions in setup.py), so an upgrade fails loudly instead of training silently slower.

    Args:
        layer: a built `keras_hub.layers.TransformerEncoder`.

    Returns:
        The number of layers replaced (3).

    Example:

    >>> block = keras_hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2)
    >>> block.build((None, None, 4))
    >>> use_fast_dropout_in_transformer_layer(block)
    3
    >>> type(block._feedforward_dropout).__name__
    'FastDropout'
    """
    if not layer.built:
        raise ValueError(f"{layer.name}: build the TransformerEncoder before replacing its "
                         "dropout layers")
    replaced = 0
    for owner_path, attribute in _TRANSFORMER_DROPOUTS:
        owner = layer
        for name in owner_path:
            owner = getattr(owner, name, None)
        old = getattr(owner, attribute, None)
        if type(old) is not keras.layers.Dropout:  # pylint: disable=unidiomatic-typecheck
            raise TypeError(
                f"{layer.name}: expected a keras.layers.Dropout at "
                f"{'.'.join(owner_path + (attribute,))}, found {type(old).__name__}; the "
                "installed keras-hub/Keras differ from the versions electra_tf was tested "
                "with (see setup.py)")
        new = FastDropout(old.rate, noise_shape=old.noise_shape, seed=old.seed,
                          dtype=old.dtype_policy, name=old.name)
        # Same slot in the owner's layer list, so layer order (and checkpoints) stay put.
        owner._tracker.replace_tracked_value("layers", old, new)  # pylint: disable=protected-access
        setattr(owner, attribute, new)
        replaced += 1
    return replaced
