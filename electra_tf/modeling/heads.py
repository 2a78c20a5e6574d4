"""The two pretraining heads (SPEC 2): the generator's masked-LM head and the
discriminator's replaced-token-detection head."""

import keras
import keras_hub

from electra_tf.modeling.activations import gelu_exact


def build_masked_lm_head(token_embedding, *, initializer_range=0.02, layer_norm_epsilon=1e-12,
                         name="generator_predictions"):
    """Masked-LM head: dense(E, gelu) -> LayerNorm -> x @ word_table^T + output_bias.

    keras-hub's `MaskedLMHead` does exactly the reference computation, gathering the
    sequence output at `masked_lm_positions` first so the vocabulary projection runs on
    [B, N] positions only. Its sub-layers `intermediate_dense`, `intermediate_layer_norm`
    and weight `output_bias` are the reference's `generator_predictions/{dense, LayerNorm,
    output_bias}`.

    Args:
        token_embedding: the `ReversibleEmbedding` whose table is used transposed.
        initializer_range: stddev of the dense kernel's truncated-normal initialiser.
        layer_norm_epsilon: LayerNorm epsilon.
        name: layer name.

    Returns:
        A built `keras_hub.layers.MaskedLMHead`; call it as
        `head(sequence_output, mask_positions=masked_lm_positions)` -> [B, N, V] logits.

    Example:

    >>> table = keras_hub.layers.ReversibleEmbedding(100, 16)
    >>> head = build_masked_lm_head(table)
    >>> head(np.ones((2, 8, 32)), mask_positions=np.ones((2, 3), "int32")).shape
    (2, 3, 100)
    """
    return keras_hub.layers.MaskedLMHead(
        token_embedding=token_embedding,
        intermediate_activation=gelu_exact,
        layer_norm_epsilon=layer_norm_epsilon,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        name=name,
    )


def build_discriminator(encoder, *, initializer_range=0.02, name="discriminator"):
    """Adds the replaced-token-detection head: dense(H, gelu) -> dense(1) per token.

    Layer names map to the reference `discriminator_predictions/dense` and
    `discriminator_predictions/dense_1` (HuggingFace: `dense_prediction`).

    Args:
        encoder: the discriminator encoder from `build_encoder` (its layers are reused,
            not copied).
        initializer_range: stddev of the first dense kernel's truncated-normal initialiser.
        name: the model's name.

    Returns:
        A `keras.Model` with the encoder's dict inputs and per-token logits float32
        [B, S] (the last dense runs in float32 under mixed precision).

    Example:

    >>> disc = build_discriminator(encoder)
    >>> disc(inputs).shape  # [batch, seq_len]
    """
    hidden_size = encoder.output.shape[-1]
    x = keras.layers.Dense(
        hidden_size,
        activation=gelu_exact,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        name="discriminator_predictions_dense",
    )(encoder.output)
    # float32 so that the logits fed to the sigmoid loss are float32 under any policy.
    logits = keras.layers.Dense(
        1, dtype="float32", name="discriminator_predictions_dense_prediction")(x)
    logits = keras.layers.Reshape((-1,), dtype="float32", name="squeeze_logits")(logits)
    return keras.Model(inputs=encoder.input, outputs=logits, name=name)
