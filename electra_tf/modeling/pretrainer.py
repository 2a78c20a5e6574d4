"""ElectraPretrainer: generator + discriminator and the whole ELECTRA objective (docs/architecture.md).

`compute_losses` reads top to bottom like the paper: mask, run the generator, sample,
build the fake input, run the discriminator, two losses, their weighted sum.
"""

import keras
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf.modeling.discriminator import ElectraDiscriminator
from electra_tf.modeling.embeddings import ElectraEmbeddings, GdesTokenEmbedding
from electra_tf.modeling.encoder import ElectraEncoder
from electra_tf.modeling.heads import masked_lm_head
from electra_tf.modeling.masking import mask_tokens, scatter_max_at_positions
from electra_tf.modeling.sampling import gumbel_max_sample


def _ratio(numerator, denominator):
    """Reference-style weighted mean: sum / (count + 1e-6), in float32."""
    return tf.reduce_sum(numerator) / (tf.reduce_sum(denominator) + 1e-6)


class ElectraPretrainer(keras.Model):
    """Generator and discriminator trained jointly (objective `electra`), or a masked LM
    at the discriminator's size alone (objective `mlm`, BERT-style baseline).

    Attributes:
        generator: `keras.Model` (token_ids, segment_ids, padding_mask) -> generator
            sequence output [B, S, Hg]; None for the `mlm` objective.
        discriminator_encoder: `keras.Model` (same inputs) -> sequence output [B, S, H];
            what fine-tuning builds on.
        discriminator: `keras.Model` (same inputs) -> per-token replaced-token logits
            float32 [B, S]. For the `mlm` objective there is no replaced-token head and
            this is `discriminator_encoder`.
        masked_lm_head: keras-hub `MaskedLMHead` on the generator (or, for `mlm`, the
            discriminator encoder), tied to the word table.
        generator_embeddings, discriminator_embeddings: the `ElectraEmbeddings` blocks
            (the same object when `model.embedding_sharing` is `tied`).

    Args:
        config: an `ElectraConfig` (sizes, sharing, objective).
        pad_id, cls_id, sep_id, mask_id: special token ids of the vocabulary.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    >>> from electra_tf.config import from_dict
    >>> cfg = from_dict({"model": dict(vocab_size=100, embedding_size=16, hidden_size=32,
    ...                                num_layers=1, num_heads=2, intermediate_size=64),
    ...                  "data": dict(max_seq_length=8)})
    >>> model = ElectraPretrainer(cfg)
    >>> ids = np.array([[2, 10, 11, 12, 13, 14, 3, 0]] * 2, "int32")
    >>> batch = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": (ids > 0) * 1}
    >>> out = model.compute_losses(batch, tf.constant([0, 1]))
    >>> sorted(out)[:3], out["loss"].dtype
    (['disc_accuracy', 'disc_labels', 'disc_loss'], tf.float32)
    """

    def __init__(self, config, *, pad_id=0, cls_id=2, sep_id=3, mask_id=4, **kwargs):
        kwargs.setdefault("name", "electra_pretrainer")
        super().__init__(**kwargs)
        m, objective = config.model, config.objective
        self.electra_config = config
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = pad_id, cls_id, sep_id, mask_id

        def embeddings(name, token_embedding=None):
            return ElectraEmbeddings(
                m.vocab_size, m.embedding_size, m.max_position_embeddings,
                m.type_vocab_size, m.hidden_dropout, m.initializer_range,
                m.layer_norm_epsilon, token_embedding=token_embedding, name=name)

        sharing = m.embedding_sharing
        if objective.kind == "mlm" or sharing == "tied":
            # One block for both networks (the reference default).
            self.generator_embeddings = embeddings("embeddings")
            self.discriminator_embeddings = self.generator_embeddings
        else:
            self.generator_embeddings = embeddings("generator_embeddings")
            token_embedding = None
            if sharing == "gdes":
                token_embedding = GdesTokenEmbedding(
                    self.generator_embeddings.token_embedding, name="token_embedding")
            self.discriminator_embeddings = embeddings("embeddings", token_embedding)
        # Built here, outside the networks' name scopes, so that variable paths read
        # `embeddings/...` (shared) or `generator_embeddings/...`, as in the reference.
        for block in (self.generator_embeddings, self.discriminator_embeddings):
            if not block.built:
                block.build((None, None))

        with keras.name_scope("discriminator"):
            if objective.kind == "mlm":
                self.discriminator_encoder = ElectraEncoder.from_electra_config(
                    config, "discriminator", self.discriminator_embeddings)
                self.discriminator = self.discriminator_encoder
            else:
                self.discriminator = ElectraDiscriminator.from_electra_config(
                    config, self.discriminator_embeddings)
                self.discriminator_encoder = self.discriminator.encoder
        if objective.kind == "mlm":
            self.generator = None
            mlm_width = m.hidden_size
        else:
            with keras.name_scope("generator"):
                self.generator = ElectraEncoder.from_electra_config(
                    config, "generator", self.generator_embeddings)
            mlm_width = config.generator_hidden_size()
        self.masked_lm_head = masked_lm_head(
            self.generator_embeddings.token_embedding,
            initializer_range=m.initializer_range,
            layer_norm_epsilon=m.layer_norm_epsilon,
            name="generator_predictions")
        self.masked_lm_head.build((None, None, mlm_width))
        # Every variable exists now: a checkpoint restores without a forward pass.
        self.built = True

    def call(self, inputs, training=False):
        """Discriminator logits [B, S] (sequence output for the `mlm` objective)."""
        return self.discriminator(inputs, training=training)

    def compute_losses(self, batch, seed, training=True, *, masked=None,
                       sampled_token_ids=None):
        """Runs one ELECTRA step's forward pass and returns losses and metrics.

        Args:
            batch: dict with `token_ids`, `segment_ids`, `padding_mask` int [B, S].
            seed: int32/int64 [2] stateless seed; masking and sampling are drawn from it.
            training: enables dropout.
            masked: optional precomputed `mask_tokens` output (tests, parity checks).
            sampled_token_ids: optional int32 [B, N] generator samples to use instead of
                drawing them (tests, parity checks).

        Returns:
            dict of float32 tensors: scalars `loss`, `mlm_loss`, `disc_loss`,
            `masked_lm_accuracy`, `sampled_masked_lm_accuracy`, `disc_accuracy`,
            `disc_precision`, `disc_recall`; [B, S] `disc_probs`, `disc_labels`,
            `disc_weights`. Losses are means over this replica's batch.
        """
        objective = self.electra_config.objective
        token_ids = tf.cast(batch["token_ids"], tf.int32)
        segment_ids = tf.cast(batch["segment_ids"], tf.int32)
        padding_mask = tf.cast(batch["padding_mask"], tf.int32)
        is_token = tf.cast(padding_mask, tf.float32)
        mask_seed, sample_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2))

        # 1. Dynamic masking (docs/architecture.md, "Masking").
        if masked is None:
            masked = mask_tokens(
                token_ids, padding_mask, mask_seed, mask_id=self.mask_id,
                special_ids=(self.pad_id, self.cls_id, self.sep_id, self.mask_id),
                mask_prob=objective.mask_prob,
                max_predictions=objective.max_predictions_per_seq,
                mask_token_prob=objective.mask_token_prob,
                with_replacement=objective.sample_positions_with_replacement)
        masked = {key: tf.convert_to_tensor(value) for key, value in masked.items()}
        positions = masked["masked_lm_positions"]
        original_ids = masked["masked_lm_ids"]
        weights = masked["masked_lm_weights"]

        # 2. Generator (or the MLM-only model) predicts the originals at masked positions.
        mlm_encoder = self.generator or self.discriminator_encoder
        generator_output = mlm_encoder(
            {"token_ids": masked["masked_token_ids"], "segment_ids": segment_ids,
             "padding_mask": padding_mask}, training=training)
        mlm_logits = tf.cast(
            self.masked_lm_head(generator_output, mask_positions=positions), tf.float32)
        mlm_per_slot = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=original_ids, logits=mlm_logits)
        mlm_loss = _ratio(weights * mlm_per_slot, weights)
        mlm_correct = tf.cast(
            tf.equal(tf.argmax(mlm_logits, -1, output_type=tf.int32), original_ids), tf.float32)
        out = {"mlm_loss": mlm_loss, "masked_lm_accuracy": _ratio(weights * mlm_correct, weights)}
        if self.generator is None:
            return self._mlm_only_outputs(out, is_token)

        # 3. Sample replacements from the generator: Gumbel-max, no gradient (docs/architecture.md, "Sampling, labels and losses").
        if sampled_token_ids is None:
            sampled_token_ids = gumbel_max_sample(
                mlm_logits, sample_seed, temperature=objective.temperature,
                disallowed_ids=original_ids if objective.disallow_correct else None)
        sampled_token_ids = tf.stop_gradient(tf.cast(sampled_token_ids, tf.int32))

        # 4. Fake input and labels: replaced = masked AND sample differs from the original.
        sampled_at_position = scatter_max_at_positions(
            positions, tf.where(weights > 0, sampled_token_ids, -1), tf.shape(token_ids)[1], -1)
        is_masked = sampled_at_position >= 0
        fake_token_ids = tf.where(is_masked, sampled_at_position, token_ids)
        replaced_token_labels = tf.cast(
            is_masked & tf.not_equal(fake_token_ids, token_ids), tf.float32)

        # 5. Discriminator: sigmoid CE over every non-pad token ([CLS]/[SEP] included).
        disc_logits = tf.cast(self.discriminator(
            {"token_ids": fake_token_ids, "segment_ids": segment_ids,
             "padding_mask": padding_mask}, training=training), tf.float32)
        disc_per_token = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=replaced_token_labels, logits=disc_logits)
        disc_loss = _ratio(is_token * disc_per_token, is_token)

        out["disc_loss"] = disc_loss
        out["loss"] = objective.gen_weight * mlm_loss + objective.disc_weight * disc_loss
        sampled_correct = tf.cast(tf.equal(sampled_token_ids, original_ids), tf.float32)
        out["sampled_masked_lm_accuracy"] = _ratio(weights * sampled_correct, weights)
        out.update(self._disc_metrics(disc_logits, replaced_token_labels, is_token))
        return out

    @staticmethod
    def _disc_metrics(disc_logits, labels, is_token):
        """Reference `metric_fn`: accuracy over non-pad tokens, precision, recall, AUC inputs."""
        predictions = tf.cast(disc_logits > 0.0, tf.float32)
        correct = tf.cast(tf.equal(predictions, labels), tf.float32)
        true_positives = tf.reduce_sum(is_token * predictions * labels)
        return {
            "disc_accuracy": _ratio(is_token * correct, is_token),
            "disc_precision": tf.math.divide_no_nan(
                true_positives, tf.reduce_sum(is_token * predictions)),
            "disc_recall": tf.math.divide_no_nan(
                true_positives, tf.reduce_sum(is_token * labels)),
            "disc_probs": tf.sigmoid(disc_logits),
            "disc_labels": labels,
            "disc_weights": is_token,
        }

    @staticmethod
    def _mlm_only_outputs(out, is_token):
        """The `mlm` objective: loss = MLM loss; discriminator entries are zeros."""
        zero = tf.zeros([], tf.float32)
        out.update(loss=out["mlm_loss"], disc_loss=zero, sampled_masked_lm_accuracy=zero,
                   disc_accuracy=zero, disc_precision=zero, disc_recall=zero,
                   disc_probs=tf.zeros_like(is_token), disc_labels=tf.zeros_like(is_token),
                   disc_weights=tf.zeros_like(is_token))
        return out

    def get_config(self):
        return {
            "name": self.name,
            "electra_config": self.electra_config.to_dict(),
            "pad_id": self.pad_id, "cls_id": self.cls_id,
            "sep_id": self.sep_id, "mask_id": self.mask_id,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        electra_config = config_lib.from_dict(config.pop("electra_config"))
        return cls(electra_config, **config)
