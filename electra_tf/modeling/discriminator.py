"""The ELECTRA discriminator on its own: encoder + replaced-token-detection head.

What fine-tuning and export start from. It is built the same way inside `ElectraPretrainer`
and alone (`ElectraDiscriminator.from_electra_config`), so a pretraining checkpoint restores
into a discriminator built alone (`electra_tf.model_loading.load_discriminator`).
"""

import keras

from electra_tf.modeling.encoder import ElectraEncoder, EncoderHeadConfig
from electra_tf.modeling.heads import ReplacedTokenDetectionHead


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraDiscriminator(EncoderHeadConfig, keras.Model):
    """(token_ids, segment_ids, padding_mask) -> replaced-token logits float32 [B, S].

    Args:
        encoder: an `ElectraEncoder` (its layers are used, not copied); `self.encoder`.
        initializer_range: stddev of the head's first dense kernel initialiser.
        **kwargs: passed to `keras.Model` (`name`).

    Example:

    >>> encoder = ElectraEncoder(vocab_size=100, embedding_size=16, hidden_size=32,
    ...                          num_layers=1, num_heads=2, intermediate_size=64)
    >>> discriminator = ElectraDiscriminator(encoder)
    >>> ones = np.ones((2, 8), "int32")
    >>> discriminator({"token_ids": ones, "segment_ids": 0 * ones,
    ...                "padding_mask": ones}).shape
    TensorShape([2, 8])
    >>> clone = ElectraDiscriminator.from_config(discriminator.get_config())
    >>> [v.shape for v in clone.weights] == [v.shape for v in discriminator.weights]
    True
    """

    def __init__(self, encoder, initializer_range=0.02, **kwargs):
        kwargs.setdefault("name", "discriminator")
        head = ReplacedTokenDetectionHead(
            encoder.hidden_size, initializer_range=initializer_range,
            name="discriminator_predictions")
        self.encoder = encoder
        self.head = head
        logits = head(encoder.output)
        super().__init__(inputs=encoder.input, outputs=logits, **kwargs)
        self.initializer_range = initializer_range

    @classmethod
    def from_electra_config(cls, config, embeddings=None, **kwargs):
        """The discriminator of an `ElectraConfig`, with new or shared embeddings.

        Args:
            config: an `electra_tf.config.ElectraConfig`.
            embeddings: an `ElectraEmbeddings` to share with the generator, or None.
            **kwargs: passed to the constructor (`name`).
        """
        encoder = ElectraEncoder.from_electra_config(config, "discriminator", embeddings)
        return cls(encoder, initializer_range=config.model.initializer_range, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.layers.serialize(self.encoder),
            "initializer_range": self.initializer_range,
        }
