"""FlatEinsumDense (modeling/projections.py): the same function and gradients as Keras'
EinsumDense projections, as 2-D matmuls, and the one place that converts them."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.modeling.projections import (FlatEinsumDense,
                                             use_flat_projections_in_transformer_layer)


def _block(hidden=16, heads=4, dtype=None):
    block = keras_hub.layers.TransformerEncoder(intermediate_dim=32, num_heads=heads,
                                                dropout=0.0, dtype=dtype)
    block.build((None, None, hidden))
    return block


def _outputs_and_grads(block, x, mask):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = block(x, padding_mask=mask)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(1.0, y.shape[-1] + 1.0))
    grads = tape.gradient(loss, [x] + block.trainable_variables)
    return y, grads


def _relative_errors(grads, reference):
    """Per-gradient ||g - r|| / ||r||, floored at 1e-3 of the largest reference norm (the key
    bias's gradient is zero up to rounding: softmax ignores a per-row constant)."""
    grads = [tf.cast(g, tf.float32).numpy() for g in grads]
    reference = [tf.cast(r, tf.float32).numpy() for r in reference]
    floor = 1e-3 * max(np.linalg.norm(r) for r in reference)
    return np.array([np.linalg.norm(g - r) / max(np.linalg.norm(r), floor)
                     for g, r in zip(grads, reference)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_outputs_and_gradients_as_einsum(seed):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(3, 7, 16)), tf.float32)
    mask = tf.constant([[1] * 7, [1] * 5 + [0] * 2, [1] * 2 + [0] * 5])
    weights = _block().get_weights()
    results = {}
    for policy in ("float32", "mixed_bfloat16"):
        reference, flat = _block(dtype=policy), _block(dtype=policy)
        reference.set_weights(weights)
        flat.set_weights(weights)
        assert use_flat_projections_in_transformer_layer(flat) == 4
        results[policy] = (_outputs_and_grads(reference, x, mask),
                           _outputs_and_grads(flat, x, mask))
    (y_ref, g_ref), (y_flat, g_flat) = results["float32"]
    # float32: the same function up to summation order.
    assert y_flat.dtype == y_ref.dtype and y_flat.shape == y_ref.shape == (3, 7, 16)
    np.testing.assert_allclose(y_flat.numpy(), y_ref.numpy(), atol=2e-5)
    assert len(g_flat) == len(g_ref) == 1 + 16  # x, and 16 weights of a block
    assert _relative_errors(g_flat, g_ref).max() < 2e-5
    # bf16: both paths round every product to ~3 digits, in different orders; against the
    # float32 gradients the flat path is no less accurate than Keras' einsum.
    (y16_ref, g16_ref), (y16_flat, g16_flat) = results["mixed_bfloat16"]
    assert y16_flat.dtype == y16_ref.dtype == tf.bfloat16
    einsum_error = _relative_errors(g16_ref, g_ref)
    flat_error = _relative_errors(g16_flat, g_ref)
    assert flat_error.max() < 0.1 and einsum_error.max() < 0.1
    assert flat_error.mean() < 1.5 * einsum_error.mean() + 1e-3, (flat_error, einsum_error)


def test_projections_become_two_dimensional_matmuls_with_dynamic_shapes():
    block = _block()
    use_flat_projections_in_transformer_layer(block)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 16], tf.float32)])
    def forward_and_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = block(x)
            loss = tf.reduce_sum(y * tf.range(1.0, 17.0))
        return y, tape.gradient(loss, block.trainable_variables)

    graph = forward_and_backward.get_concrete_function().graph
    types = [op.type for op in graph.get_operations()]
    # Forward: 4 projections + 2 feed-forward = 6 MatMuls; the only batched products left
    # are the attention scores and context (Einsum at unknown length). Backward: 2 MatMuls
    # per dense layer, 2 products per batched one.
    assert types.count("MatMul") == 6 + 2 * 6
    assert types.count("BatchMatMulV2") + types.count("Einsum") == 2 + 2 * 2
    # Runs at shapes the graph has not seen (batch and length unknown when traced).
    y, grads = forward_and_backward(tf.ones((2, 5, 16)))
    assert y.shape == (2, 5, 16) and all(g is not None for g in grads)
    y, _ = forward_and_backward(tf.ones((1, 9, 16)))
    assert y.shape == (1, 9, 16)


def test_conversion_keeps_variables_and_refuses_unknown_layouts():
    block = _block()
    before = [(v.path, v.shape) for v in block.weights]
    assert use_flat_projections_in_transformer_layer(block) == 4
    assert [(v.path, v.shape) for v in block.weights] == before
    attention = block._self_attention_layer
    assert all(type(getattr(attention, name)) is FlatEinsumDense
               for name in ("_query_dense", "_key_dense", "_value_dense", "_output_dense"))
    assert use_flat_projections_in_transformer_layer(block) == 0  # already converted
    # A projection of another kind where an EinsumDense was expected: a loud error.
    other = _block()
    other._self_attention_layer._key_dense.__class__ = keras.layers.Dense
    with pytest.raises(TypeError, match="expected a keras.layers.EinsumDense"):
        use_flat_projections_in_transformer_layer(other)
    unbuilt = keras_hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2)
    with pytest.raises(ValueError, match="build the TransformerEncoder"):
        use_flat_projections_in_transformer_layer(unbuilt)


def test_other_equations_fall_back_to_einsum():
    layer = keras.layers.EinsumDense("ab,bc->ac", output_shape=4, bias_axes="c")
    layer.build((None, 3))
    x = np.arange(6, dtype="float32").reshape(2, 3)
    expected = layer(x).numpy()
    layer.__class__ = FlatEinsumDense
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)


def test_every_encoder_of_the_pretrainer_uses_flat_projections():
    from electra_tf.config import from_dict
    from electra_tf.modeling.pretrainer import ElectraPretrainer

    cfg = from_dict({"model": dict(vocab_size=50, embedding_size=8, hidden_size=16,
                                   num_layers=2, num_heads=2, intermediate_size=32),
                     "data": dict(max_seq_length=8)})
    model = ElectraPretrainer(cfg)
    projections = [layer for layer in model._flatten_layers()
                   if isinstance(layer, keras.layers.EinsumDense)]
    # 2 networks x 2 blocks x 4 projections, all converted.
    assert len(projections) == 16
    assert all(type(p) is FlatEinsumDense for p in projections)
