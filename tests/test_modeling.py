"""Networks (docs/architecture.md, "Model"): sizes, names, embedding sharing and its gradients, exact GELU, masks."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import ConfigError, from_dict
from electra_tf.modeling import (ElectraDiscriminator, ElectraEncoder, ElectraPretrainer,
                                 ReplacedTokenDetectionHead, gelu_exact)

from conftest import tiny_batch as _batch

V, E, H = 40, 16, 32
B, S, N = 2, 12, 3


def _config(sharing="tied", **objective):
    return from_dict({
        "model": {"vocab_size": V, "embedding_size": E, "hidden_size": H, "num_layers": 2,
                  "num_heads": 2, "intermediate_size": 64, "embedding_sharing": sharing},
        "generator": {"hidden_fraction": 0.5},
        "objective": {"max_predictions_per_seq": N, **objective},
        "data": {"max_seq_length": S},
    })


def _fixed_masking():
    """Positions 2, 5, 7 in row 0 and 1, 2 in row 1 (third slot unused)."""
    batch = _batch()
    positions = np.array([[2, 5, 7], [1, 2, 0]], dtype="int32")
    weights = np.array([[1, 1, 1], [1, 1, 0]], dtype="float32")
    ids = np.take_along_axis(batch["token_ids"], positions, 1) * (weights > 0)
    masked_ids = batch["token_ids"].copy()
    masked_ids[0, [2, 5]] = 4
    masked_ids[1, [1, 2]] = 4
    return {"masked_token_ids": masked_ids, "masked_lm_positions": positions,
            "masked_lm_ids": ids.astype("int32"), "masked_lm_weights": weights}


def _word_tables(model):
    return [v for v in model.trainable_variables if v.path.endswith("token_embedding/embeddings")]


def _grad(model, loss_key, variables, sampled):
    with tf.GradientTape() as tape:
        out = model.compute_losses(_batch(), tf.constant([1, 2]), training=False,
                                   masked=_fixed_masking(), sampled_token_ids=sampled)
    grads = tape.gradient(out[loss_key], variables)
    return [0.0 if g is None else float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g))))
            for g in grads]


# Row 0: all three slots replaced; row 1: slot 0 replaced, slot 1 samples the original (22).
SAMPLED = np.array([[30, 31, 18], [32, 22, 0]], dtype="int32")


def test_sizes_names_and_no_pooler():
    cfg = _config()
    model = ElectraPretrainer(cfg)
    paths = {v.path: tuple(v.shape) for v in model.trainable_variables}
    assert len(paths) == len(model.trainable_variables)  # unique names, no duplicates
    hg = cfg.generator_hidden_size()
    expected = {
        "embeddings/token_embedding/embeddings": (V, E),
        "embeddings/position_embedding/embeddings": (512, E),
        "embeddings/segment_embedding/embeddings": (2, E),
        "embeddings/embeddings_layer_norm/gamma": (E,),
        "discriminator/embeddings_project/kernel": (E, H),
        "discriminator/transformer_layer_1/self_attention_layer/query/kernel": (H, 2, H // 2),
        "discriminator/transformer_layer_1/feedforward_intermediate_dense/kernel": (H, 64),
        "discriminator/discriminator_predictions/dense/kernel": (H, H),
        "discriminator/discriminator_predictions/dense_prediction/kernel": (H, 1),
        "generator/transformer_layer_1/self_attention_layer/query/kernel": (hg, 1, hg),
        "generator/transformer_layer_1/feedforward_intermediate_dense/kernel": (hg, 4 * hg),
        "generator_predictions/intermediate_dense/kernel": (hg, E),
        "generator_predictions/output_bias": (V,),
    }
    for path, shape in expected.items():
        assert paths.get(path) == shape, path
    assert hg == 16 and cfg.generator_num_heads() == 1
    assert not any("transformer_layer_2" in p or "pooler" in p for p in paths)
    # embeddings_project only where E != H: a generator as wide as E has none.
    cfg_same = from_dict({"model": {"vocab_size": V, "embedding_size": 32, "hidden_size": 64,
                                    "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
                          "generator": {"hidden_fraction": 0.5}, "data": {"max_seq_length": S}})
    paths_same = [v.path for v in ElectraPretrainer(cfg_same).trainable_variables]
    assert "discriminator/embeddings_project/kernel" in paths_same
    assert not any(p.startswith("generator/embeddings_project") for p in paths_same)


def test_discriminator_standalone_interface_and_padding():
    model = ElectraPretrainer(_config())
    disc = model.discriminator
    assert sorted(t.name for t in tf.nest.flatten(disc.inputs)) == [
        "padding_mask", "segment_ids", "token_ids"]
    batch = _batch()
    logits = disc(batch).numpy()
    assert logits.shape == (B, S) and logits.dtype == np.float32
    # Padded keys get no attention weight: changing padded tokens leaves real outputs unchanged.
    changed = {k: v.copy() for k, v in batch.items()}
    changed["token_ids"][1, 8:] = 37
    changed["segment_ids"][1, 8:] = 1
    np.testing.assert_allclose(disc(changed).numpy()[1, :8], logits[1, :8], atol=1e-6)
    assert model.generator(batch).shape == (B, S, 16)
    assert model.discriminator_encoder(batch).shape == (B, S, H)


def test_tied_one_table_gets_gradient_from_both_losses():
    model = ElectraPretrainer(_config("tied"))
    tables = _word_tables(model)
    assert len(tables) == 1
    mlm_grad = _grad(model, "mlm_loss", tables, SAMPLED)[0]
    disc_grad = _grad(model, "disc_loss", tables, SAMPLED)[0]
    assert mlm_grad > 1e-6 and disc_grad > 1e-6


def test_untied_two_tables_each_trained_by_its_own_loss():
    model = ElectraPretrainer(_config("untied"))
    tables = _word_tables(model)
    assert len(tables) == 2
    generator_table = model.generator_embeddings.token_embedding.embeddings
    discriminator_table = model.discriminator_embeddings.token_embedding.embeddings
    assert generator_table is not discriminator_table
    mlm = _grad(model, "mlm_loss", [generator_table, discriminator_table], SAMPLED)
    disc = _grad(model, "disc_loss", [generator_table, discriminator_table], SAMPLED)
    assert mlm[0] > 1e-6 and mlm[1] == 0.0
    assert disc[0] == 0.0 and disc[1] > 1e-6


def test_gdes_disc_loss_moves_delta_not_generator_table():
    model = ElectraPretrainer(_config("gdes"))
    tables = _word_tables(model)
    assert len(tables) == 1  # the generator's; the discriminator has a zero delta
    delta = model.discriminator_embeddings.token_embedding.delta
    assert float(tf.reduce_max(tf.abs(delta))) == 0.0
    generator_table = tables[0]
    disc = _grad(model, "disc_loss", [generator_table, delta], SAMPLED)
    mlm = _grad(model, "mlm_loss", [generator_table, delta], SAMPLED)
    assert disc[0] == 0.0 and disc[1] > 1e-6
    assert mlm[0] > 1e-6 and mlm[1] == 0.0
    # The discriminator reads stop_gradient(generator table) + delta.
    ids = tf.constant([[5, 6, 7]])
    np.testing.assert_allclose(
        model.discriminator_embeddings.token_embedding(ids).numpy(),
        tf.gather(generator_table, ids).numpy())


def test_exact_gelu_in_heads_and_transformer_layers():
    x = np.linspace(-4, 4, 81).astype("float32")
    erf_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    tanh_gelu = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(gelu_exact(x).numpy(), erf_gelu, atol=1e-6)
    assert np.abs(erf_gelu - tanh_gelu).max() > 1e-4  # the test can tell them apart

    model = ElectraPretrainer(_config())
    rng = np.random.default_rng(0)
    for layer in (model.discriminator.get_layer("discriminator_predictions").dense,
                  model.discriminator.get_layer("transformer_layer_0")
                  ._feedforward_intermediate_dense,
                  model.masked_lm_head._intermediate_dense):
        inputs = rng.normal(size=(4, layer.kernel.shape[0])).astype("float32")
        pre = inputs @ layer.kernel.numpy() + layer.bias.numpy()
        expected = 0.5 * pre * (1 + np.vectorize(math.erf)(pre / math.sqrt(2)))
        np.testing.assert_allclose(layer(inputs).numpy(), expected, atol=1e-5)


def test_mixed_bfloat16_gives_float32_losses_and_logits():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        for sharing in ("tied", "gdes"):
            model = ElectraPretrainer(_config(sharing))
            out = model.compute_losses(_batch(), tf.constant([3, 4]))
            for key, value in out.items():
                assert value.dtype == tf.float32, key
                assert np.isfinite(value.numpy()).all(), key
            assert model.discriminator(_batch()).dtype == tf.float32
            assert model.generator(_batch()).dtype == tf.bfloat16  # really mixed
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_config_round_trip_of_pretrainer():
    model = ElectraPretrainer(_config("untied"), mask_id=7)
    clone = ElectraPretrainer.from_config(model.get_config())
    assert clone.mask_id == 7
    assert [v.path for v in clone.trainable_variables] == [
        v.path for v in model.trainable_variables]


def test_encoder_and_discriminator_are_keras_classes_that_round_trip():
    """Each network is a Keras class whose saved config rebuilds it alone (no pretrainer,
    no forward pass), and the rebuilt one computes the same function once weights are set."""
    model = ElectraPretrainer(_config())
    disc = model.discriminator
    assert isinstance(disc, ElectraDiscriminator) and isinstance(disc.encoder, ElectraEncoder)
    assert isinstance(model.generator, ElectraEncoder)
    config = keras.saving.serialize_keras_object(disc)
    clone = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(clone) is ElectraDiscriminator
    assert clone.encoder.get_config() == disc.encoder.get_config()
    assert clone.encoder.get_config()["hidden_size"] == H
    assert [tuple(v.shape) for v in clone.weights] == [tuple(v.shape) for v in disc.weights]
    assert clone.count_params() == disc.count_params()
    clone.set_weights(disc.get_weights())
    np.testing.assert_allclose(clone(_batch()).numpy(), disc(_batch()).numpy(), atol=1e-6)
    # The generator encoder alone, at the generator's size (hidden_fraction 0.5).
    gen_config = model.generator.get_config()
    assert (gen_config["hidden_size"], gen_config["num_heads"]) == (16, 1)
    gen = ElectraEncoder.from_config(gen_config)
    assert gen(_batch()).shape == (B, S, 16)
    head = ReplacedTokenDetectionHead.from_config(disc.head.get_config())
    assert head(np.zeros((B, S, H), "float32")).shape == (B, S)


def test_attention_dropout_must_equal_hidden_dropout_in_config():
    with pytest.raises(ConfigError, match="model.attention_dropout=0.2 is invalid") as err:
        from_dict({"model": {"attention_dropout": 0.2, "hidden_dropout": 0.1}})
    assert "\n" not in str(err.value) and "hidden_dropout (0.1)" in str(err.value)
