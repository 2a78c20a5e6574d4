"""Fine-tuning models: the discriminator's encoder with a task head (docs/architecture.md,
"Fine-tuning").

Classification and regression read the [CLS] vector directly (ELECTRA has no pooler):
[CLS] -> dropout -> dense(num_labels) (one output for regression). Tagging puts the same
dropout and dense on every token. Both are functional Keras models with `get_config()`, whose
output is a dict `{"logits": float32}` so that export names it.
"""

import keras

from electra_tf.modeling.encoder import ElectraEncoder, EncoderHeadConfig

TASK_KINDS = ("classification", "regression", "tagging")


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraTaskModel(EncoderHeadConfig, keras.Model):
    """(token_ids, segment_ids, padding_mask) -> {"logits": float32}.

    `logits` is [B, num_labels] for classification, [B, 1] for regression (the predicted
    score) and [B, S, num_labels] for tagging.

    Args:
        encoder: an `ElectraEncoder` (pretrained, imported, or freshly initialised).
        kind: "classification", "regression" or "tagging".
        num_labels: classes or tags (1 for regression).
        dropout: dropout before the output layer (0.1 in the reference).
        initializer_range: stddev of the output kernel's truncated-normal initialiser.
        **kwargs: passed to `keras.Model` (`name`).

    Example:

    >>> encoder = ElectraEncoder(vocab_size=100, embedding_size=16, hidden_size=32,
    ...                          num_layers=1, num_heads=2, intermediate_size=64)
    >>> model = ElectraTaskModel(encoder, "classification", 3)
    >>> ones = np.ones((2, 8), "int32")
    >>> inputs = {"token_ids": ones, "segment_ids": 0 * ones, "padding_mask": ones}
    >>> model(inputs)["logits"].shape
    TensorShape([2, 3])
    >>> ElectraTaskModel(encoder, "tagging", 5)(inputs)["logits"].shape
    TensorShape([2, 8, 5])
    """

    def __init__(self, encoder, kind, num_labels, dropout=0.1, initializer_range=0.02,
                 **kwargs):
        if kind not in TASK_KINDS:
            raise ValueError(f"kind={kind!r}: use one of {', '.join(TASK_KINDS)}")
        if kind == "regression":
            num_labels = 1
        if num_labels < 1:
            raise ValueError(f"num_labels={num_labels} must be >= 1")
        kwargs.setdefault("name", f"electra_{kind}")
        self.encoder = encoder
        self.head_dropout = keras.layers.Dropout(dropout, name="task_dropout")
        # float32 logits under any mixed-precision policy: the losses and exports use them.
        self.head = keras.layers.Dense(
            num_labels, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=initializer_range), dtype="float32", name="task_head")
        sequence = encoder.output
        features = sequence if kind == "tagging" else sequence[:, 0, :]
        logits = self.head(self.head_dropout(features))
        super().__init__(inputs=encoder.input, outputs={"logits": logits}, **kwargs)
        self.kind = kind
        self.num_labels = num_labels
        self.dropout = dropout
        self.initializer_range = initializer_range

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.layers.serialize(self.encoder),
            "kind": self.kind,
            "num_labels": self.num_labels,
            "dropout": self.dropout,
            "initializer_range": self.initializer_range,
        }


def build_task_model(cfg, kind, num_labels, *, encoder=None, dropout=None):
    """The task model of an `ElectraConfig`, on a given (pretrained) encoder or a new one.

    Args:
        cfg: the `ElectraConfig` of the encoder.
        kind: "classification", "regression" or "tagging".
        num_labels: classes or tags (ignored for regression).
        encoder: an `ElectraEncoder` to fine-tune; None builds a randomly initialised one.
        dropout: head dropout (default `model.hidden_dropout`).
    """
    if encoder is None:
        encoder = ElectraEncoder.from_electra_config(cfg, "discriminator")
    return ElectraTaskModel(
        encoder, kind, num_labels,
        dropout=cfg.model.hidden_dropout if dropout is None else dropout,
        initializer_range=cfg.model.initializer_range)
