"""The two pretraining heads (docs/architecture.md, "Model"): the generator's masked-LM head
and the discriminator's replaced-token-detection head."""

import keras
import keras_hub

from electra_tf.modeling.activations import gelu_exact


def masked_lm_head(token_embedding, *, initializer_range=0.02, layer_norm_epsilon=1e-12,
                   name="generator_predictions"):
    """The generator head: dense(E, gelu) -> LayerNorm -> x @ word_table^T + output_bias.

    keras-hub's `MaskedLMHead` does exactly the reference computation, gathering the
    sequence output at `masked_lm_positions` first so the vocabulary projection runs on
    [B, N] positions only, and has its own `get_config()`. Its sub-layers
    `intermediate_dense`, `intermediate_layer_norm` and weight `output_bias` are the
    reference's `generator_predictions/{dense, LayerNorm, output_bias}`.

    Args:
        token_embedding: the `ReversibleEmbedding` whose table is used transposed.
        initializer_range: stddev of the dense kernel's truncated-normal initialiser.
        layer_norm_epsilon: LayerNorm epsilon.
        name: layer name.

    Returns:
        An unbuilt `keras_hub.layers.MaskedLMHead`; call it as
        `head(sequence_output, mask_positions=masked_lm_positions)` -> [B, N, V] logits.

    Example:

    >>> table = keras_hub.layers.ReversibleEmbedding(100, 16)
    >>> table.build((None, None))
    >>> head = masked_lm_head(table)
    >>> head(np.ones((2, 8, 32)), mask_positions=np.ones((2, 3), "int32")).shape
    TensorShape([2, 3, 100])
    """
    return keras_hub.layers.MaskedLMHead(
        token_embedding=token_embedding,
        intermediate_activation=gelu_exact,
        layer_norm_epsilon=layer_norm_epsilon,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        name=name,
    )


@keras.saving.register_keras_serializable(package="electra_tf")
class ReplacedTokenDetectionHead(keras.layers.Layer):
    """The discriminator head: dense(H, gelu) -> dense(1) -> one float32 logit per token.

    Sub-layers `dense` and `dense_prediction` are the reference's
    `discriminator_predictions/dense` and `discriminator_predictions/dense_1` (HuggingFace:
    `discriminator_predictions.dense` / `dense_prediction`). The last dense runs in float32,
    so the logits fed to the sigmoid loss are float32 under any mixed-precision policy.

    Args:
        hidden_size: width of the first dense (the discriminator's H).
        initializer_range: stddev of the first dense kernel's truncated-normal initialiser
            (the second is glorot-uniform, as in the reference).
        **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`).

    Example:

    >>> head = ReplacedTokenDetectionHead(32)
    >>> head(np.ones((2, 8, 32), "float32")).shape
    TensorShape([2, 8])
    """

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            hidden_size, activation=gelu_exact,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy, name="dense")
        self.dense_prediction = keras.layers.Dense(1, dtype="float32", name="dense_prediction")

    def build(self, sequence_output_shape):
        self.dense.build(sequence_output_shape)
        self.dense_prediction.build(tuple(sequence_output_shape)[:-1] + (self.hidden_size,))
        self.built = True

    def call(self, sequence_output):
        logits = self.dense_prediction(self.dense(sequence_output))
        return keras.ops.squeeze(logits, axis=-1)

    def compute_output_shape(self, sequence_output_shape):
        return tuple(sequence_output_shape)[:-1]

    def compute_output_spec(self, sequence_output):
        return keras.KerasTensor(tuple(sequence_output.shape)[:-1], dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, initializer_range=self.initializer_range)
        return config
