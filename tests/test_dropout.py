"""FastDropout (modeling/dropout.py): keep rate, scaling, inference, determinism, and the one
place that puts it inside keras-hub's TransformerEncoder."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.modeling.dropout import (FastDropout, fast_dropout,
                                         use_fast_dropout_in_transformer_layer)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_keep_rate_and_inverted_scaling(rate):
    x = np.ones((400, 500), "float32")  # 200,000 decisions
    y = fast_dropout(x, rate, tf.constant([3, 4], tf.int64)).numpy()
    kept = y != 0
    # Kept values are scaled by exactly 1 / (1 - rate); dropped ones are exactly 0.
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - rate), rtol=1e-6)
    # Drop probability round(rate * 2^16) / 2^16, within 5 sigma over 200,000 draws.
    p = round(rate * 65536) / 65536
    sigma = np.sqrt(p * (1 - p) / x.size)
    assert abs((1 - kept.mean()) - p) < 5 * sigma
    # The mean is preserved (inverted dropout).
    assert abs(y.mean() - 1.0) < 5 * sigma / (1 - rate)


def test_odd_sizes_bf16_and_gradient():
    x = tf.ones((3, 7, 5), tf.bfloat16)  # an odd element count: half of a 32-bit draw unused
    y = fast_dropout(x, 0.25, tf.constant([1, 2], tf.int64))
    assert y.shape == x.shape and y.dtype == tf.bfloat16
    x32 = tf.random.stateless_normal((64, 33), seed=[0, 1])
    with tf.GradientTape() as tape:
        tape.watch(x32)
        y32 = fast_dropout(x32, 0.3, tf.constant([5, 6], tf.int64))
        total = tf.reduce_sum(y32)
    grad = tape.gradient(total, x32).numpy()
    # d(sum)/dx is the mask times the scale: the same pattern as the output.
    np.testing.assert_array_equal(grad != 0, y32.numpy() != 0)
    np.testing.assert_allclose(grad[grad != 0], 1 / 0.7, rtol=1e-6)


def test_layer_inference_is_identity_and_training_is_deterministic_under_a_seed():
    x = np.random.default_rng(0).normal(size=(8, 64)).astype("float32")
    layer = FastDropout(0.2, seed=7)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    first, second = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert not np.array_equal(first, second)  # the seed generator advances per call
    again = FastDropout(0.2, seed=7)
    np.testing.assert_array_equal(again(x, training=True).numpy(), first)
    np.testing.assert_array_equal(again(x, training=True).numpy(), second)
    # Keras' Dropout interface: config round trip, rate 0 is the identity.
    assert FastDropout.from_config(layer.get_config()).rate == 0.2
    np.testing.assert_array_equal(FastDropout(0.0)(x, training=True).numpy(), x)


def test_transformer_layer_swap_replaces_exactly_three_and_refuses_unknown_layouts():
    block = keras_hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2, dropout=0.1)
    block.build((None, None, 8))
    before = len(block._flatten_layers())
    assert use_fast_dropout_in_transformer_layer(block) == 3
    dropouts = [layer for layer in block._flatten_layers()
                if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 3 and all(type(d) is FastDropout for d in dropouts)
    assert {d.name for d in dropouts} >= {"self_attention_dropout", "feedforward_dropout"}
    assert len(block._flatten_layers()) == before  # replaced in place, nothing added
    # Only the three replacements' seed states remain among the block's variables.
    states = [v for v in block.variables if v.path.endswith("seed_generator_state")]
    assert len(states) == 3
    # Swapping twice finds FastDropout where keras.layers.Dropout was expected: a loud error.
    with pytest.raises(TypeError, match="expected a keras.layers.Dropout"):
        use_fast_dropout_in_transformer_layer(block)
    unbuilt = keras_hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2)
    with pytest.raises(ValueError, match="build the TransformerEncoder"):
        use_fast_dropout_in_transformer_layer(unbuilt)


def test_every_dropout_of_the_pretrainer_is_fast():
    from electra_tf.config import from_dict
    from electra_tf.modeling import ElectraPretrainer

    cfg = from_dict({"model": dict(vocab_size=30, embedding_size=8, hidden_size=16,
                                   num_layers=2, num_heads=2, intermediate_size=32),
                     "data": dict(max_seq_length=8)})
    model = ElectraPretrainer(cfg)
    dropouts = [layer for layer in model._flatten_layers()
                if isinstance(layer, keras.layers.Dropout)]
    # Embeddings (shared, 1) + 3 per Transformer layer in the discriminator and generator.
    assert len(dropouts) == 1 + 3 * 2 * 2
    assert all(type(d) is FastDropout for d in dropouts)
