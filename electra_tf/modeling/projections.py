"""Attention projections as plain 2-D matmuls: the same weights, faster gradients on CPU.

Keras' `MultiHeadAttention` projects queries, keys and values with `EinsumDense`
("abc,cde->abde", kernel [H, heads, head_size]) and its output with "abcd,cde->abe". On the
TensorFlow backend those become a *batched* matmul of the [B, S, H] activations against the
kernel broadcast over the batch; the kernel's gradient is then a batched matmul that writes
one [H, heads * head_size] product per example, followed by a sum over the batch, and the
bias gradient another reduction. On ELECTRA-Small (benchmarks/profile_step.py) those four
projections ran ~1.5x slower per FLOP than the feed-forward `Dense` layers, which flatten
to [B * S, H] first. `FlatEinsumDense` computes exactly the same function the `Dense` way:
reshape to 2-D, one `MatMul`, `BiasAdd`, reshape back; its gradients are two 2-D matmuls and
one `BiasAddGrad`. No library layer does this for `MultiHeadAttention`'s projections.

Variables, names, shapes and `get_config()` are those of the `EinsumDense` it replaces (the
instance keeps its weights; only its class changes), so checkpoints and saved models are
unaffected. Equations or bias layouts other than MultiHeadAttention's, and quantized or
LoRA-enabled layers, fall back to `EinsumDense.call`. Keras' `Model.quantize` skips
subclasses of `EinsumDense` (with a warning), so quantize an exported model through the
TFLite converter (`electra_tf.export`), not `Model.quantize`.
"""

import keras
import tensorflow as tf

# The two equations MultiHeadAttention builds for 3-D inputs.
_IN_PROJECTION = "abc,cde->abde"   # [B, S, H] x [H, N, D] -> [B, S, N, D]
_OUT_PROJECTION = "abcd,cde->abe"  # [B, S, N, D] x [N, D, H] -> [B, S, H]
# The bias layouts MultiHeadAttention gives them: over every output dimension.
_BIAS_AXES = {_IN_PROJECTION: "de", _OUT_PROJECTION: "e"}


@keras.saving.register_keras_serializable(package="electra_tf")
class FlatEinsumDense(keras.layers.EinsumDense):
    """An `EinsumDense` whose two attention equations run as one 2-D `MatMul` + `BiasAdd`.

    Not constructed directly: `use_flat_projections_in_transformer_layer` converts the four
    projections of a built keras-hub `TransformerEncoder`.
    """

    def call(self, inputs, training=None):
        if (self.equation not in (_IN_PROJECTION, _OUT_PROJECTION)
                or self.bias_axes not in (None, _BIAS_AXES[self.equation])
                or getattr(self, "quantization_mode", None)
                or getattr(self, "lora_enabled", False)
                or self.activation not in (None, keras.activations.linear)):
            return super().call(inputs, training=training)
        kernel = tf.convert_to_tensor(self.kernel)
        if kernel.dtype != inputs.dtype:
            kernel = tf.cast(kernel, inputs.dtype)
        contracted = 1 if self.equation == _IN_PROJECTION else 2
        in_width = kernel.shape[:contracted].num_elements()
        out_dims = kernel.shape[contracted:]
        out_width = out_dims.num_elements()
        shape = tf.shape(inputs)
        leading = [shape[0], shape[1]]
        y = tf.matmul(tf.reshape(inputs, [-1, in_width]), tf.reshape(kernel, [in_width, out_width]))
        if self.bias is not None:
            bias = tf.convert_to_tensor(self.bias)
            if bias.dtype != y.dtype:
                bias = tf.cast(bias, y.dtype)
            y = tf.nn.bias_add(y, tf.reshape(bias, [out_width]))
        y = tf.reshape(y, leading + list(out_dims))
        # Keep the static shape the einsum would have given (Keras shape inference).
        y.set_shape(inputs.shape[:2].concatenate(out_dims))
        return y


# The projections keras-hub's TransformerEncoder builds (through Keras' MultiHeadAttention).
_ATTENTION_PROJECTIONS = ("_query_dense", "_key_dense", "_value_dense", "_output_dense")


def use_flat_projections_in_transformer_layer(layer) -> int:
    """Converts the four attention projections of a built keras-hub `TransformerEncoder`.

    Like `dropout.use_fast_dropout_in_transformer_layer`, this reaches into keras-hub and
    Keras internals (`_self_attention_layer._{query,key,value,output}_dense`) and raises if
    the layout is not the one it was written for, so that an upgrade fails loudly.

    Args:
        layer: a built `keras_hub.layers.TransformerEncoder`.

    Returns:
        The number of projections converted (4).

    Example:

    >>> block = keras_hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2)
    >>> block.build((None, None, 4))
    >>> use_flat_projections_in_transformer_layer(block)
    4
    """
    attention = getattr(layer, "_self_attention_layer", None)
    if attention is None or not layer.built:
        raise ValueError(f"{layer.name}: build the TransformerEncoder before converting its "
                         "attention projections")
    converted = 0
    for attribute in _ATTENTION_PROJECTIONS:
        dense = getattr(attention, attribute, None)
        if type(dense) is FlatEinsumDense:  # pylint: disable=unidiomatic-typecheck
            continue
        if type(dense) is not keras.layers.EinsumDense:  # pylint: disable=unidiomatic-typecheck
            raise TypeError(
                f"{layer.name}: expected a keras.layers.EinsumDense at "
                f"_self_attention_layer.{attribute}, found {type(dense).__name__}; the "
                "installed keras-hub/Keras differ from the versions electra_tf was tested "
                "with (see setup.py)")
        if dense.equation not in (_IN_PROJECTION, _OUT_PROJECTION):
            raise TypeError(f"{layer.name}: unexpected projection equation "
                            f"{dense.equation!r} at _self_attention_layer.{attribute}")
        # Same object, same variables and tracking; only `call` changes.
        dense.__class__ = FlatEinsumDense
        converted += 1
    return converted
