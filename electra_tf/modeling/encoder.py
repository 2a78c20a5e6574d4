"""A BERT-style post-LayerNorm Transformer encoder from keras-hub layers (SPEC 2).

The generator and the discriminator are both built here, at their own sizes, on top of an
`ElectraEmbeddings` block that they may share. Deliberately not keras-hub's
`ElectraBackbone`: that uses approximate GELU and adds an untrained pooler, so released
Google/HuggingFace weights would not reproduce their outputs.
"""

import keras
import keras_hub

from electra_tf.modeling.activations import gelu_exact


def build_encoder(
    embeddings,
    *,
    hidden_size,
    num_layers,
    num_heads,
    intermediate_size,
    dropout=0.1,
    initializer_range=0.02,
    layer_norm_epsilon=1e-12,
    name="encoder",
):
    """Builds a functional encoder: (token_ids, segment_ids, padding_mask) -> [B, S, H].

    Layer names follow the reference checkpoint (SPEC 9): `embeddings_project` (only when
    the embedding width differs from `hidden_size`) and `transformer_layer_{i}`.

    Args:
        embeddings: an `ElectraEmbeddings` layer (possibly shared with another encoder).
        hidden_size: H, the Transformer width.
        num_layers: number of Transformer blocks.
        num_heads: attention heads per block (H must be a multiple).
        intermediate_size: feed-forward width (4H in the paper).
        dropout: dropout on attention probabilities, attention output and FFN output
            (keras-hub's `TransformerEncoder` takes one rate for all three).
        initializer_range: stddev of the truncated-normal kernel initialiser.
        layer_norm_epsilon: LayerNorm epsilon (1e-12).
        name: the model's name.

    Returns:
        A `keras.Model` with dict inputs `token_ids`, `segment_ids`, `padding_mask`
        (int32 [B, S]) and the sequence output [B, S, H] in the compute dtype.

    Example:

    >>> emb = ElectraEmbeddings(100, 16)
    >>> enc = build_encoder(emb, hidden_size=32, num_layers=1, num_heads=2,
    ...                     intermediate_size=64)
    >>> ones = np.ones((2, 8), "int32")
    >>> enc({"token_ids": ones, "segment_ids": 0 * ones, "padding_mask": ones}).shape
    (2, 8, 32)
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
    padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")

    x = embeddings(token_ids, segment_ids)
    if embeddings.embedding_size != hidden_size:
        # Reference: a plain tf.layers.dense (glorot-uniform, with bias) per network.
        x = keras.layers.Dense(hidden_size, name="embeddings_project")(x)
    for i in range(num_layers):
        # keras-hub applies the padding mask as a boolean mask inside the softmax
        # (-1e9 on padded keys); the reference adds -10000. Both give those keys exactly
        # zero weight in float32, so outputs agree.
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=intermediate_size,
            num_heads=num_heads,
            dropout=dropout,
            activation=gelu_exact,
            layer_norm_epsilon=layer_norm_epsilon,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            normalize_first=False,  # post-LayerNorm, as BERT/ELECTRA
            name=f"transformer_layer_{i}",
        )(x, padding_mask=padding_mask)
    inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
    return keras.Model(inputs=inputs, outputs=x, name=name)
