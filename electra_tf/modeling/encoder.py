"""The ELECTRA encoder: a BERT-style post-LayerNorm Transformer built from keras-hub layers.

The generator and the discriminator are both `ElectraEncoder`s, at their own sizes, on top
of an `ElectraEmbeddings` block that they may share (docs/architecture.md, "Model").
Deliberately not keras-hub's `ElectraBackbone`: that uses approximate GELU and adds an
untrained pooler, so released Google/HuggingFace weights would not reproduce their outputs.
It is a keras-hub `Backbone` all the same (a functional model whose `get_config()` holds its
constructor arguments), so it saves, loads and round-trips like one.
"""

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from electra_tf.modeling.activations import gelu_exact
from electra_tf.modeling.dropout import use_fast_dropout_in_transformer_layer
from electra_tf.modeling.embeddings import ElectraEmbeddings
from electra_tf.modeling.projections import use_flat_projections_in_transformer_layer


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraEncoder(keras_hub.models.Backbone):
    """(token_ids, segment_ids, padding_mask) -> sequence output [B, S, hidden_size].

    Sub-layer names follow the reference checkpoint (docs/architecture.md, "Checkpoint
    names"): `embeddings` (the `ElectraEmbeddings` block), `embeddings_project` (only when
    the embedding width differs from `hidden_size`) and `transformer_layer_{i}`.

    Args:
        vocab_size: V, rows of the word table.
        embedding_size: E, the embedding width.
        hidden_size: H, the Transformer width.
        num_layers: number of Transformer blocks.
        num_heads: attention heads per block (H must be a multiple).
        intermediate_size: feed-forward width (4H in the paper).
        dropout: dropout on embeddings, attention probabilities, attention output and FFN
            output (keras-hub's `TransformerEncoder` takes one rate for all three).
        max_position_embeddings: rows of the position table (512).
        type_vocab_size: rows of the token-type table (2).
        initializer_range: stddev of the truncated-normal initialisers (0.02).
        layer_norm_epsilon: LayerNorm epsilon (1e-12).
        embeddings: an existing `ElectraEmbeddings` to use (shared with another encoder);
            None builds a new one from the arguments above. Not part of `get_config()`: a
            rebuilt encoder owns its block.
        dtype: dtype policy of the layers (None: the global policy).
        **kwargs: passed to `keras.Model` (`name`, `trainable`).

    Example:

    >>> encoder = ElectraEncoder(vocab_size=100, embedding_size=16, hidden_size=32,
    ...                          num_layers=1, num_heads=2, intermediate_size=64)
    >>> ones = np.ones((2, 8), "int32")
    >>> encoder({"token_ids": ones, "segment_ids": 0 * ones, "padding_mask": ones}).shape
    TensorShape([2, 8, 32])
    >>> ElectraEncoder.from_config(encoder.get_config()).count_params() == (
    ...     encoder.count_params())
    True
    """

    def __init__(
        self,
        vocab_size,
        embedding_size,
        hidden_size,
        num_layers,
        num_heads,
        intermediate_size,
        dropout=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_epsilon=1e-12,
        embeddings=None,
        dtype=None,
        **kwargs,
    ):
        if embeddings is None:
            embeddings = ElectraEmbeddings(
                vocab_size, embedding_size, max_position_embeddings, type_vocab_size,
                dropout, initializer_range, layer_norm_epsilon, dtype=dtype,
                name="embeddings")
        elif (embeddings.vocab_size, embeddings.embedding_size) != (vocab_size,
                                                                   embedding_size):
            raise ValueError(
                f"shared embeddings are {embeddings.vocab_size}x{embeddings.embedding_size} "
                f"but the encoder was asked for {vocab_size}x{embedding_size}")
        project = None
        if embedding_size != hidden_size:
            # Reference: a plain tf.layers.dense (glorot-uniform, with bias) per network.
            project = keras.layers.Dense(hidden_size, dtype=dtype, name="embeddings_project")
        transformer_layers = []
        for i in range(num_layers):
            layer = keras_hub.layers.TransformerEncoder(
                intermediate_dim=intermediate_size,
                num_heads=num_heads,
                dropout=dropout,
                activation=gelu_exact,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
                normalize_first=False,  # post-LayerNorm, as BERT/ELECTRA
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            layer.build((None, None, hidden_size))
            use_fast_dropout_in_transformer_layer(layer)
            use_flat_projections_in_transformer_layer(layer)
            transformer_layers.append(layer)

        # Layers are attributes before the functional model is made (the keras-hub way).
        self.embeddings = embeddings
        self.embeddings_project = project
        self.transformer_layers = transformer_layers
        self.token_embedding = embeddings.token_embedding

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = embeddings(token_ids, segment_ids)
        if project is not None:
            x = project(x)
        for layer in transformer_layers:
            # keras-hub applies the padding mask as a boolean mask inside the softmax
            # (-1e9 on padded keys); the reference adds -10000. Both give those keys exactly
            # zero weight in float32, so outputs agree.
            x = layer(x, padding_mask=padding_mask)
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids,
                    "padding_mask": padding_mask},
            outputs=x, dtype=dtype, **kwargs)

        # === Config ===
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon

    def call(self, inputs, training=None, mask=None, **kwargs):
        check_input_ids(inputs, self)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    @classmethod
    def from_electra_config(cls, config, network="discriminator", embeddings=None, **kwargs):
        """The discriminator's or the generator's encoder at the sizes of an `ElectraConfig`.

        Args:
            config: an `electra_tf.config.ElectraConfig`.
            network: "discriminator" or "generator" (its width, depth and heads derive from
                the discriminator's and `generator.hidden_fraction`).
            embeddings: an `ElectraEmbeddings` to share, or None for a new block.
            **kwargs: passed to the constructor (`name`, `dtype`).
        """
        m = config.model
        if network == "discriminator":
            sizes = (m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size)
        elif network == "generator":
            sizes = (config.generator_hidden_size(), config.generator_num_layers(),
                     config.generator_num_heads(), config.generator_intermediate_size())
        else:
            raise ValueError(f"network={network!r}: use 'discriminator' or 'generator'")
        hidden, layers, heads, ffn = sizes
        kwargs.setdefault("name", network if network == "generator" else "discriminator_encoder")
        return cls(
            vocab_size=m.vocab_size, embedding_size=m.embedding_size, hidden_size=hidden,
            num_layers=layers, num_heads=heads, intermediate_size=ffn,
            dropout=m.hidden_dropout, max_position_embeddings=m.max_position_embeddings,
            type_vocab_size=m.type_vocab_size, initializer_range=m.initializer_range,
            layer_norm_epsilon=m.layer_norm_epsilon, embeddings=embeddings, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            dropout=self.dropout,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            initializer_range=self.initializer_range,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config


def _first_outside(values: np.ndarray, low: int, high: int):
    """(value, index tuple) of the first entry outside [low, high), or None."""
    bad = (values < low) | (values >= high)
    if not bad.any():
        return None
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    return int(values[where]), where


def check_input_ids(inputs, encoder) -> None:
    """Refuses ids the model has no embedding for, when called eagerly on concrete values.

    The embedding lookup (`keras.ops.take`) reads a negative id from the end of the table
    (-1 is the last word piece), and on accelerators an id past the end reads zeros, so
    such ids would give plausible-looking outputs. Only the eager API path is checked (a
    direct `model(inputs)` call on arrays or eager tensors): inside `tf.function`,
    `predict`, SavedModel and TFLite tracing the check is skipped and costs nothing
    (docs/architecture.md, "Model").

    Args:
        inputs: the model's inputs, a dict with `token_ids` and `segment_ids` (others are
            left to Keras).
        encoder: the `ElectraEncoder` whose sizes bound the ids.

    Raises:
        ValueError: naming the bad id, its [row, column] and the valid range.

    Example:

    >>> encoder = ElectraEncoder(vocab_size=100, embedding_size=16, hidden_size=32,
    ...                          num_layers=1, num_heads=2, intermediate_size=64)
    >>> ids = np.array([[2, 7, -1, 3]], "int32")
    >>> check_input_ids({"token_ids": ids, "segment_ids": 0 * ids}, encoder)
    Traceback (most recent call last):
    ...
    ValueError: token_ids[0, 2] = -1 is not a token id of this model: valid ids are 0..99 ...
    """
    if not isinstance(inputs, dict) or not tf.executing_eagerly():
        return
    checks = (("token_ids", encoder.vocab_size, "token id", "vocab_size", "use ids of the "
               "model's vocab.txt (its tokenizer's encode gives them)"),
              ("segment_ids", encoder.type_vocab_size, "segment id", "type_vocab_size",
               "use 0 for the first segment and 1 for the second"))
    for key, size, what, config_key, fix in checks:
        values = inputs.get(key)
        if values is None or isinstance(values, keras.KerasTensor):
            continue
        if tf.is_tensor(values) or isinstance(values, tf.RaggedTensor):
            if not hasattr(values, "_numpy"):
                continue  # symbolic, ragged or sparse: nothing concrete to check here
            values = values.numpy()
        values = np.asarray(values)
        if values.ndim != 2:
            continue  # Keras reports the shape itself
        found = _first_outside(values, 0, size)
        if found is not None:
            value, where = found
            raise ValueError(
                f"{key}[{', '.join(map(str, where))}] = {value} is not a {what} of this "
                f"model: valid ids are 0..{size - 1} ({config_key} {size}); {fix}")
        if key == "token_ids" and values.shape[1] > encoder.max_position_embeddings:
            raise ValueError(
                f"token_ids has {values.shape[1]} positions but the model takes at most "
                f"{encoder.max_position_embeddings} (max_position_embeddings); truncate "
                "the input")


class EncoderHeadConfig:
    """`from_config` for models made of an `encoder` plus a head (discriminator, task models):
    the encoder is stored as its own serialized config and rebuilt first. Their eager calls
    check the input ids as the encoder's do (`check_input_ids`): the functional graph they
    are built from runs the encoder's layers, not the encoder's own `call`."""

    def call(self, inputs, training=None, mask=None, **kwargs):
        check_input_ids(inputs, self.encoder)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)
