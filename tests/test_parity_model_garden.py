"""Parity with TensorFlow Model Garden's ELECTRA (tf-models-official 2.20).

We build Model Garden's `official.nlp.modeling.models.ElectraPretrainer` on two
`BertEncoder` networks (tf_keras / Keras 2; it imports fine next to Keras 3 in one
process, no TF_USE_LEGACY_KERAS needed) and our `ElectraPretrainer` at a tiny size, copy
our weights into Model Garden's, feed both the same masked batch and the same sampled
tokens, and check generator logits, discriminator labels and logits, and both losses
(computed by Model Garden's own `ElectraPretrainTask.build_losses`) agree within 1e-4.

Intended differences, and how the test adapts:
- Activation: Model Garden defaults to tanh-approximate GELU; its encoders, MLM head and
  discriminator projection are configured here with exact (erf) GELU, as the reference.
- Embedding sharing: Model Garden ties only the word table (each encoder keeps its own
  position/token-type/LayerNorm); the reference and we share the whole embedding block.
  The test copies our shared block into both Model Garden encoders.
- Model Garden adds a pooler per encoder and a next-sentence head on the generator; their
  outputs are not part of the ELECTRA objective and are not compared (the test checks
  that every other Model Garden variable received a weight).
- Sampling: Model Garden draws Gumbel noise with stateful `tf.random.uniform` and builds
  a [B, N, V] one-hot; we draw stateless noise and keep ids. The test injects the same
  sampled ids into both (Model Garden's `sample_from_softmax` is patched to return them).
- Loss denominators: Model Garden uses `divide_no_nan(sum, count)`, the reference and we
  `sum / (count + 1e-6)`; the relative difference is below 1e-6 here.
"""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from electra_tf.config import from_dict
from electra_tf.modeling import ElectraPretrainer, mask_tokens
from official.nlp.configs import electra as mg_electra_configs
from official.nlp.data import pretrain_dataloader as mg_pretrain_dataloader
from official.nlp.modeling import models as mg_models
from official.nlp.modeling import networks as mg_networks
from official.nlp.modeling.models import electra_pretrainer as mg_electra_module



def _load_model_garden_electra_task():
    """Imports official/nlp/tasks/electra_task.py without the `official.nlp.tasks` package.

    That package's __init__ imports every task, among them one that imports tensorflow_hub
    0.16, which needs `pkg_resources` (removed from setuptools >= 81, installed here). The
    ELECTRA task module itself does not need it.
    """
    import official.nlp

    path = os.path.join(os.path.dirname(official.nlp.__file__), "tasks", "electra_task.py")
    spec = importlib.util.spec_from_file_location("model_garden_electra_task", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mg_electra_task = _load_model_garden_electra_task()

V, E, H, LAYERS, HEADS, FFN = 60, 16, 32, 2, 2, 64
HIDDEN_FRACTION = 0.75  # generator hidden 24 != E, so both networks have embeddings_project
B, S, N = 3, 24, 5


def _config():
    return from_dict({
        "model": {"vocab_size": V, "embedding_size": E, "hidden_size": H,
                  "num_layers": LAYERS, "num_heads": HEADS, "intermediate_size": FFN},
        "generator": {"hidden_fraction": HIDDEN_FRACTION},
        "objective": {"mask_prob": 0.25, "max_predictions_per_seq": N},
        "data": {"max_seq_length": S},
    })


def _model_garden(cfg):
    exact_gelu = lambda x: tf_keras.activations.gelu(x, approximate=False)  # noqa: E731
    init = tf_keras.initializers.TruncatedNormal(stddev=0.02)

    def encoder(hidden, heads, ffn, embedding_layer=None):
        return mg_networks.BertEncoder(
            vocab_size=V, hidden_size=hidden, num_layers=LAYERS, num_attention_heads=heads,
            max_sequence_length=cfg.model.max_position_embeddings, type_vocab_size=2,
            inner_dim=ffn, inner_activation=exact_gelu, initializer=init,
            embedding_width=E, embedding_layer=embedding_layer, dict_outputs=True)

    discriminator = encoder(H, HEADS, FFN)
    generator = encoder(cfg.generator_hidden_size(), cfg.generator_num_heads(),
                        cfg.generator_intermediate_size(),
                        embedding_layer=discriminator.get_embedding_layer())
    return mg_models.ElectraPretrainer(
        generator_network=generator, discriminator_network=discriminator, vocab_size=V,
        num_classes=2, num_token_predictions=N, mlm_activation=exact_gelu,
        mlm_initializer=init)


# Our keras-hub TransformerEncoder weight names -> Model Garden TransformerEncoderBlock's.
_BLOCK_NAMES = {
    "self_attention_layer/query/kernel": "self_attention/query/kernel",
    "self_attention_layer/query/bias": "self_attention/query/bias",
    "self_attention_layer/key/kernel": "self_attention/key/kernel",
    "self_attention_layer/key/bias": "self_attention/key/bias",
    "self_attention_layer/value/kernel": "self_attention/value/kernel",
    "self_attention_layer/value/bias": "self_attention/value/bias",
    "self_attention_layer/attention_output/kernel": "self_attention/attention_output/kernel",
    "self_attention_layer/attention_output/bias": "self_attention/attention_output/bias",
    "self_attention_layer_norm/gamma": "self_attention_layer_norm/gamma",
    "self_attention_layer_norm/beta": "self_attention_layer_norm/beta",
    "feedforward_intermediate_dense/kernel": "intermediate/kernel",
    "feedforward_intermediate_dense/bias": "intermediate/bias",
    "feedforward_output_dense/kernel": "output/kernel",
    "feedforward_output_dense/bias": "output/bias",
    "feedforward_layer_norm/gamma": "output_layer_norm/gamma",
    "feedforward_layer_norm/beta": "output_layer_norm/beta",
}


def _by_suffix(variables, prefix):
    """{name relative to `prefix`: variable} for Keras 3 paths or tf_keras names."""
    out = {}
    for v in variables:
        name = getattr(v, "path", None) or v.name
        name = name.split(":")[0]
        out[name[name.index(prefix) + len(prefix):]] = v
    return out


def copy_weights_to_model_garden(ours, mg):
    """Assigns every weight of our pretrainer to Model Garden's; returns the MG variables set.

    The mapping, Model Garden <- ours: `word_embeddings` <- `embeddings/token_embedding`;
    each encoder's `position_embedding`, `type_embeddings`, `embeddings/layer_norm` <- our
    shared block; `embedding_projection` <- `embeddings_project`; `transformer/layer_i/*`
    <- `transformer_layer_i/*` (names in `_BLOCK_NAMES`; both use [hidden, heads, head_dim]
    attention kernels); `generator_masked_lm/{transform/dense, transform/LayerNorm,
    output_bias}` <- `generator_predictions/{intermediate_dense, intermediate_layer_norm,
    output_bias}`; `discriminator_projection_head` <- `discriminator_predictions/dense`;
    the final `dense` <- `discriminator_predictions/dense_prediction`.
    """
    assigned = set()

    def assign(mg_var, our_var):
        assert tuple(mg_var.shape) == tuple(our_var.shape), (mg_var.name, our_var.path)
        mg_var.assign(np.asarray(our_var.numpy()))
        assigned.add(id(mg_var))

    block = ours.generator_embeddings
    for mg_net, our_net in ((mg.discriminator_network, ours.discriminator_encoder),
                            (mg.generator_network, ours.generator)):
        assign(mg_net._embedding_layer.embeddings, block.token_embedding.embeddings)
        assign(mg_net._position_embedding_layer.weights[0],
               block.position_embedding.position_embeddings)
        assign(mg_net._type_embedding_layer.embeddings, block.segment_embedding.embeddings)
        assign(mg_net._embedding_norm_layer.gamma, block.embeddings_layer_norm.gamma)
        assign(mg_net._embedding_norm_layer.beta, block.embeddings_layer_norm.beta)
        project = our_net.get_layer("embeddings_project")
        assign(mg_net._embedding_projection.kernel, project.kernel)
        assign(mg_net._embedding_projection.bias, project.bias)
        for i, mg_block in enumerate(mg_net._transformer_layers):
            our_vars = _by_suffix(our_net.get_layer(f"transformer_layer_{i}").weights,
                                  f"transformer_layer_{i}/")
            mg_vars = _by_suffix(mg_block.weights, f"transformer/layer_{i}/")
            assert len(our_vars) == len(mg_vars) == len(_BLOCK_NAMES)
            for our_name, mg_name in _BLOCK_NAMES.items():
                assign(mg_vars[mg_name], our_vars[our_name])

    head = ours.masked_lm_head
    assign(mg.masked_lm.dense.kernel, head._intermediate_dense.kernel)
    assign(mg.masked_lm.dense.bias, head._intermediate_dense.bias)
    assign(mg.masked_lm.layer_norm.gamma, head._intermediate_layer_norm.gamma)
    assign(mg.masked_lm.layer_norm.beta, head._intermediate_layer_norm.beta)
    assign(mg.masked_lm.bias, head._bias)
    dense = ours.discriminator.head.dense
    prediction = ours.discriminator.head.dense_prediction
    assign(mg.discriminator_projection.kernel, dense.kernel)
    assign(mg.discriminator_projection.bias, dense.bias)
    assign(mg.discriminator_head.kernel, prediction.kernel)
    assign(mg.discriminator_head.bias, prediction.bias)
    return assigned


@pytest.fixture(scope="module")
def models_and_batch():
    tf_keras.utils.set_random_seed(1)
    cfg = _config()
    ours = ElectraPretrainer(cfg)
    mg = _model_garden(cfg)
    rng = np.random.default_rng(3)
    token_ids = rng.integers(5, V, size=(B, S)).astype("int32")
    lengths = [S, 17, 9]
    padding_mask = (np.arange(S)[None, :] < np.array(lengths)[:, None]).astype("int32")
    token_ids[:, 0] = 2
    for row, n in enumerate(lengths):
        token_ids[row, n - 1] = 3
        token_ids[row, n:] = 0
    segment_ids = ((np.arange(S)[None, :] >= 6) & (padding_mask > 0)).astype("int32")
    batch = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
    masked = mask_tokens(token_ids, padding_mask, tf.constant([5, 6]), mask_id=4,
                         special_ids=(0, 2, 3, 4), mask_prob=0.25, max_predictions=N)
    masked = {k: v.numpy() for k, v in masked.items()}
    # Sampled ids: random, except slot 0 of every row is the original token, which must
    # be labelled real by both implementations.
    sampled = rng.integers(5, V, size=(B, N)).astype("int32")
    sampled[:, 0] = masked["masked_lm_ids"][:, 0]
    return cfg, ours, mg, batch, masked, sampled


def _run_model_garden(mg, batch, masked, sampled, monkeypatch):
    monkeypatch.setattr(
        mg_electra_module, "sample_from_softmax",
        lambda logits, disallow=None: tf.one_hot(sampled, depth=logits.shape[-1]))
    inputs = {
        "input_word_ids": tf.constant(masked["masked_token_ids"]),
        "input_mask": tf.constant(batch["padding_mask"]),
        "input_type_ids": tf.constant(batch["segment_ids"]),
        "masked_lm_positions": tf.constant(masked["masked_lm_positions"]),
        "masked_lm_ids": tf.constant(masked["masked_lm_ids"]),
    }
    return mg(inputs, training=False)


def test_model_garden_outputs_and_losses_match(models_and_batch, monkeypatch):
    cfg, ours, mg, batch, masked, sampled = models_and_batch
    _run_model_garden(mg, batch, masked, sampled, monkeypatch)  # builds MG's variables
    assigned = copy_weights_to_model_garden(ours, mg)
    unassigned = [v.name for v in mg.trainable_variables
                  if id(v) not in assigned
                  and not any(s in v.name for s in ("pooler_transform", "classification_head"))]
    assert unassigned == []
    mg_out = _run_model_garden(mg, batch, masked, sampled, monkeypatch)

    # Generator logits at the masked positions.
    gen_inputs = {"token_ids": masked["masked_token_ids"], "segment_ids": batch["segment_ids"],
                  "padding_mask": batch["padding_mask"]}
    our_mlm_logits = ours.masked_lm_head(ours.generator(gen_inputs, training=False),
                                         mask_positions=masked["masked_lm_positions"])
    np.testing.assert_allclose(our_mlm_logits.numpy(), mg_out["lm_outputs"].numpy(),
                               atol=1e-4, rtol=1e-4)

    # Our losses with the same masking and the same samples.
    ours_out = ours.compute_losses(batch, tf.constant([0, 0]), training=False,
                                   masked=masked, sampled_token_ids=sampled)
    labels = ours_out["disc_labels"].numpy()
    np.testing.assert_array_equal(labels, mg_out["disc_label"].numpy())
    used = masked["masked_lm_weights"][:, 0] > 0
    assert used.all() and labels[np.arange(B), masked["masked_lm_positions"][:, 0]].sum() == 0

    # Discriminator logits on the fake input.
    fake = batch["token_ids"].copy()
    for row in range(B):
        for slot in range(N):
            if masked["masked_lm_weights"][row, slot] > 0:
                fake[row, masked["masked_lm_positions"][row, slot]] = sampled[row, slot]
    disc_inputs = {"token_ids": fake, "segment_ids": batch["segment_ids"],
                   "padding_mask": batch["padding_mask"]}
    our_disc_logits = ours.discriminator(disc_inputs, training=False).numpy()
    np.testing.assert_allclose(our_disc_logits, mg_out["disc_logits"].numpy(),
                               atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ours_out["disc_probs"].numpy(), tf.sigmoid(our_disc_logits),
                               atol=1e-6)

    # Model Garden's own loss code (ElectraPretrainTask.build_losses).
    task = mg_electra_task.ElectraPretrainTask(mg_electra_task.ElectraPretrainConfig(
        model=mg_electra_configs.ElectraPretrainerConfig(
            discriminator_loss_weight=cfg.objective.disc_weight),
        train_data=mg_pretrain_dataloader.BertPretrainDataConfig(
            use_next_sentence_label=False)))
    metrics = task.build_metrics()
    mg_labels = {"masked_lm_ids": tf.constant(masked["masked_lm_ids"]),
                 "masked_lm_weights": tf.constant(masked["masked_lm_weights"]),
                 "input_mask": tf.constant(batch["padding_mask"])}
    mg_total = task.build_losses(mg_labels, mg_out, metrics).numpy()
    by_name = {m.name: m.result().numpy() for m in metrics}
    np.testing.assert_allclose(ours_out["mlm_loss"].numpy(), by_name["lm_example_loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(ours_out["disc_loss"].numpy(), by_name["discriminator_loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(ours_out["loss"].numpy(), mg_total, rtol=1e-4)
    # The losses are not trivially equal: a random tiny model is near log(V) and log(2).
    assert 0.5 * np.log(V) < ours_out["mlm_loss"].numpy() < 2 * np.log(V)
    assert 0.3 < ours_out["disc_loss"].numpy() < 1.5
