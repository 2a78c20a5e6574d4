"""The ELECTRA embedding block (docs/architecture.md, "Model"): word + position + token-type, LayerNorm, dropout.

One block is shared by the generator and the discriminator (`tied`, the reference
default); `untied` builds two; `gdes` gives the discriminator its own block whose word
table is `stop_gradient(generator table) + delta` (DeBERTa-v3's gradient-disentangled
embedding sharing), via `GdesTokenEmbedding`.
"""

import keras
import keras_hub
from keras import ops

from electra_tf.modeling.dropout import FastDropout


class GdesTokenEmbedding(keras.layers.Layer):
    """Word embedding read as `stop_gradient(source table) + delta` (GDES, DeBERTa-v3).

    The discriminator's loss cannot move the generator's table; it trains only `delta`
    (zero-initialised, so both networks start from the same table). No library layer
    does this, hence written here.

    Args:
        source: the generator's `ReversibleEmbedding` whose table is shared.
        **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`).

    Example:

    >>> table = keras_hub.layers.ReversibleEmbedding(100, 8)
    >>> gdes = GdesTokenEmbedding(table)
    >>> gdes(np.zeros((2, 5), "int32")).shape
    TensorShape([2, 5, 8])
    """

    def __init__(self, source, **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self.input_dim = source.input_dim
        self.output_dim = source.output_dim

    def build(self, input_shape=None):
        if not self.source.built:
            self.source.build(input_shape)
        self.delta = self.add_weight(
            name="delta",
            shape=(self.input_dim, self.output_dim),
            initializer="zeros",
        )
        self.built = True

    def call(self, token_ids):
        table = ops.stop_gradient(ops.convert_to_tensor(self.source.embeddings)) + self.delta
        return ops.take(table, ops.cast(token_ids, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)


class ElectraEmbeddings(keras.layers.Layer):
    """Word, position and token-type embeddings summed, then LayerNorm and dropout.

    Sub-layer names map 1:1 to the reference checkpoint (docs/architecture.md, "Checkpoint names"):
    `token_embedding` = `embeddings/word_embeddings`, `position_embedding` =
    `position_embeddings`, `segment_embedding` = `token_type_embeddings`,
    `embeddings_layer_norm` = `embeddings/LayerNorm`.

    Args:
        vocab_size: V, rows of the word table.
        embedding_size: E, the embedding width.
        max_position_embeddings: rows of the position table (512 in the paper).
        type_vocab_size: rows of the token-type table (2).
        dropout: dropout rate after the LayerNorm.
        initializer_range: stddev of the truncated-normal initialiser (0.02).
        layer_norm_epsilon: LayerNorm epsilon (1e-12).
        token_embedding: optional existing word-embedding layer to use instead of a new
            `ReversibleEmbedding` (GDES passes a `GdesTokenEmbedding`).
        **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`).

    Example:

    >>> emb = ElectraEmbeddings(100, 16, 32, 2, 0.1, 0.02, 1e-12)
    >>> emb(np.ones((2, 8), "int32"), np.zeros((2, 8), "int32")).shape
    TensorShape([2, 8, 16])
    """

    def __init__(
        self,
        vocab_size,
        embedding_size,
        max_position_embeddings=512,
        type_vocab_size=2,
        dropout=0.1,
        initializer_range=0.02,
        layer_norm_epsilon=1e-12,
        token_embedding=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon

        def init():
            return keras.initializers.TruncatedNormal(stddev=initializer_range)

        self.token_embedding = token_embedding or keras_hub.layers.ReversibleEmbedding(
            vocab_size, embedding_size, embeddings_initializer=init(),
            dtype=self.dtype_policy, name="token_embedding")
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_position_embeddings, initializer=init(),
            dtype=self.dtype_policy, name="position_embedding")
        self.segment_embedding = keras.layers.Embedding(
            type_vocab_size, embedding_size, embeddings_initializer=init(),
            dtype=self.dtype_policy, name="segment_embedding")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
            name="embeddings_layer_norm")
        self.embeddings_dropout = FastDropout(
            dropout, dtype=self.dtype_policy, name="embeddings_dropout")

    def build(self, token_ids_shape=None, segment_ids_shape=None):
        shape = tuple(token_ids_shape or (None, None))
        if not self.token_embedding.built:
            self.token_embedding.build(shape)
        self.segment_embedding.build(shape)
        self.position_embedding.build(shape + (self.embedding_size,))
        self.embeddings_layer_norm.build(shape + (self.embedding_size,))
        self.built = True

    def call(self, token_ids, segment_ids, training=None):
        x = self.token_embedding(token_ids)
        x = x + self.position_embedding(x) + self.segment_embedding(segment_ids)
        x = self.embeddings_layer_norm(x)
        return self.embeddings_dropout(x, training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return tuple(token_ids_shape) + (self.embedding_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_size=self.embedding_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            dropout=self.dropout,
            initializer_range=self.initializer_range,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config
