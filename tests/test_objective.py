"""The ELECTRA objective (docs/architecture.md, "Sampling, labels and losses"): labels and losses against NumPy, sampling statistics,
determinism and XLA, the `mlm` objective, and a short learning run."""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from electra_tf.config import from_dict
from electra_tf.modeling import ElectraPretrainer, gumbel_max_sample

from conftest import tiny_batch as _batch

V, S, N = 40, 12, 3


def _config(**sections):
    data = {
        "model": {"vocab_size": V, "embedding_size": 16, "hidden_size": 32, "num_layers": 1,
                  "num_heads": 2, "intermediate_size": 64},
        "generator": {"hidden_fraction": 0.5},
        "objective": {"max_predictions_per_seq": N},
        "data": {"max_seq_length": S},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return from_dict(data)


def _fixed_masking(batch):
    positions = np.array([[2, 5, 7], [1, 2, 0]], dtype="int32")
    weights = np.array([[1, 1, 1], [1, 1, 0]], dtype="float32")
    ids = (np.take_along_axis(batch["token_ids"], positions, 1) * (weights > 0)).astype("int32")
    masked_ids = batch["token_ids"].copy()
    masked_ids[0, [2, 5]] = 4
    masked_ids[1, [1, 2]] = 4
    return {"masked_token_ids": masked_ids, "masked_lm_positions": positions,
            "masked_lm_ids": ids, "masked_lm_weights": weights}


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_labels_losses_and_metrics_match_numpy():
    model = ElectraPretrainer(_config())
    batch = _batch()
    masked = _fixed_masking(batch)
    # Row 0: every slot replaced (18 differs from 17); row 1: slot 1 samples the original
    # token 22 and must be labelled real; the unused slot's sample (9) must not be written.
    sampled = np.array([[30, 31, 18], [32, 22, 9]], dtype="int32")
    out = model.compute_losses(batch, tf.constant([0, 0]), training=False, masked=masked,
                               sampled_token_ids=sampled)

    # NumPy reference of the losses (docs/architecture.md, "Sampling, labels and losses") from the networks' raw outputs.
    gen_inputs = {"token_ids": masked["masked_token_ids"], "segment_ids": batch["segment_ids"],
                  "padding_mask": batch["padding_mask"]}
    mlm_logits = model.masked_lm_head(model.generator(gen_inputs),
                                      mask_positions=masked["masked_lm_positions"]).numpy()
    w = masked["masked_lm_weights"]
    ce = -np.take_along_axis(_log_softmax(mlm_logits.astype(np.float64)),
                             masked["masked_lm_ids"][..., None], -1)[..., 0]
    mlm_loss = (w * ce).sum() / (w.sum() + 1e-6)

    fake = batch["token_ids"].copy()
    for row, slot in zip(*np.nonzero(w)):
        fake[row, masked["masked_lm_positions"][row, slot]] = sampled[row, slot]
    labels = (fake != batch["token_ids"]).astype(np.float32)
    expected_labels = np.zeros((2, S), np.float32)
    expected_labels[0, [2, 5, 7]] = 1
    expected_labels[1, 1] = 1
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(out["disc_labels"].numpy(), expected_labels)

    disc_logits = model.discriminator({"token_ids": fake, "segment_ids": batch["segment_ids"],
                                       "padding_mask": batch["padding_mask"]}).numpy()
    x = disc_logits.astype(np.float64)
    sigmoid_ce = np.maximum(x, 0) - x * labels + np.log1p(np.exp(-np.abs(x)))
    m = batch["padding_mask"].astype(np.float64)
    disc_loss = (m * sigmoid_ce).sum() / (m.sum() + 1e-6)

    np.testing.assert_allclose(out["mlm_loss"].numpy(), mlm_loss, rtol=1e-5)
    np.testing.assert_allclose(out["disc_loss"].numpy(), disc_loss, rtol=1e-5)
    np.testing.assert_allclose(out["loss"].numpy(), mlm_loss + 50.0 * disc_loss, rtol=1e-5)

    predictions = (x > 0).astype(np.float64)
    expected_metrics = {
        "masked_lm_accuracy": (w * (mlm_logits.argmax(-1) == masked["masked_lm_ids"])).sum()
        / (w.sum() + 1e-6),
        "sampled_masked_lm_accuracy": (w * (sampled == masked["masked_lm_ids"])).sum()
        / (w.sum() + 1e-6),
        "disc_accuracy": (m * (predictions == labels)).sum() / (m.sum() + 1e-6),
        "disc_precision": (m * predictions * labels).sum() / max((m * predictions).sum(), 1e-12)
        if (m * predictions).sum() else 0.0,
        "disc_recall": (m * predictions * labels).sum() / (m * labels).sum(),
    }
    for key, value in expected_metrics.items():
        np.testing.assert_allclose(out[key].numpy(), value, rtol=1e-5, atol=1e-7, err_msg=key)
    np.testing.assert_allclose(out["sampled_masked_lm_accuracy"].numpy(), 1 / 5, rtol=1e-5)
    np.testing.assert_allclose(out["disc_probs"].numpy(), 1 / (1 + np.exp(-x)), atol=1e-6)
    np.testing.assert_array_equal(out["disc_weights"].numpy(), m)


def test_gumbel_max_sampling_follows_softmax():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    draws = 40000
    logits = np.tile(np.log(probs), (1, draws, 1)).astype("float32")
    for temperature in (1.0, 2.0):
        sampled = gumbel_max_sample(logits, tf.constant([1, 2]), temperature=temperature).numpy()
        expected = np.exp(np.log(probs) / temperature)
        expected /= expected.sum()
        freq = np.bincount(sampled.ravel(), minlength=4) / draws
        bound = 4.5 * np.sqrt(expected * (1 - expected) / draws)
        assert (np.abs(freq - expected) < bound).all(), (temperature, freq, expected)
    # disallow_correct: the original id is (practically) never sampled.
    disallowed = np.full((1, draws), 3, dtype="int32")
    sampled = gumbel_max_sample(logits, tf.constant([3, 4]), disallowed_ids=disallowed).numpy()
    assert (sampled != 3).all()
    freq = np.bincount(sampled.ravel(), minlength=4)[:3] / draws
    np.testing.assert_allclose(freq, probs[:3] / probs[:3].sum(), atol=0.015)


def test_disallow_correct_means_every_masked_position_is_replaced():
    model = ElectraPretrainer(_config(objective={"disallow_correct": True}))
    out = model.compute_losses(_batch(), tf.constant([5, 6]), training=False)
    assert float(out["sampled_masked_lm_accuracy"]) == 0.0
    assert float(out["disc_labels"].numpy().sum()) > 0


def test_seeded_determinism_and_xla():
    model = ElectraPretrainer(_config())
    batch = _batch()
    first = model.compute_losses(batch, tf.constant([7, 8]), training=False)
    again = model.compute_losses(batch, tf.constant([7, 8]), training=False)
    other = model.compute_losses(batch, tf.constant([7, 9]), training=False)
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    assert any(not np.array_equal(first[k].numpy(), other[k].numpy()) for k in first)

    compiled = tf.function(lambda b, s: model.compute_losses(b, s, training=True),
                           jit_compile=True)
    out = compiled({k: tf.constant(v) for k, v in batch.items()}, tf.constant([7, 8]))
    assert set(out) == set(first)
    for key, value in out.items():
        assert value.dtype == tf.float32 and value.shape == first[key].shape, key
        assert np.isfinite(value.numpy()).all(), key
    assert 0.5 * math.log(V) < float(out["mlm_loss"]) < 2 * math.log(V)


def test_mlm_objective_trains():
    keras.utils.set_random_seed(0)  # initial weights independent of earlier tests
    model = ElectraPretrainer(_config(objective={"kind": "mlm"}))
    assert model.generator is None and model.discriminator is model.discriminator_encoder
    batch = _batch()
    optimizer = keras.optimizers.Adam(3e-3)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(seed):
        with tf.GradientTape() as tape:
            out = model.compute_losses(batch, seed)
        grads = tape.gradient(out["loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return out

    first = step(tf.constant([0, 0]))
    for key in ("disc_loss", "disc_accuracy", "disc_precision", "disc_recall",
                "sampled_masked_lm_accuracy"):
        assert float(first[key]) == 0.0
    assert float(first["loss"]) == float(first["mlm_loss"]) > 0.5 * math.log(V)
    for i in range(150):
        step(tf.constant([i, 1]))
    losses = [float(model.compute_losses(batch, tf.constant([i, 2]), training=False)["loss"])
              for i in range(10)]
    # Seeds 0-4 all land at 0.25-0.35 of the first loss; 0.5 leaves room for thread-order noise.
    assert np.mean(losses) < 0.5 * float(first["loss"]), (first["loss"], losses)


def _pattern_corpus(rng, rows, seq_len=16, words=25, max_step=3):
    """[CLS] w1..wn [SEP]: arithmetic sequences over the word ids (step 0..max_step)."""
    token_ids = np.zeros((rows, seq_len), "int32")
    for r in range(rows):
        n = rng.integers(10, seq_len - 1)
        start, step = rng.integers(0, words), rng.integers(0, max_step + 1)
        token_ids[r, 1:n + 1] = 5 + (start + step * np.arange(n)) % words
        token_ids[r, 0], token_ids[r, n + 1] = 2, 3
    return {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
            "padding_mask": (token_ids != 0).astype("int32")}


STEPS = 350


def test_short_pretraining_run_learns_far_above_chance():
    keras.utils.set_random_seed(0)
    cfg = from_dict({
        "model": {"vocab_size": 30, "embedding_size": 32, "hidden_size": 64, "num_layers": 2,
                  "num_heads": 2, "intermediate_size": 128, "hidden_dropout": 0.0,
                  "attention_dropout": 0.0},
        "generator": {"hidden_fraction": 0.5},
        "objective": {"max_predictions_per_seq": 5},
        "data": {"max_seq_length": 16},
    })
    model = ElectraPretrainer(cfg)
    optimizer = keras.optimizers.Adam(2e-3)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    # Rows repeat one of 20 words (step 0): learnable by this tiny model in a few hundred
    # steps under the reference's tied embeddings and disc_weight 50. (Arithmetic rows with
    # steps 1-3 take the generator much longer: the 50x discriminator gradient dominates
    # the shared embeddings early on.)
    corpus = lambda rows: _pattern_corpus(rng, rows, words=20, max_step=0)  # noqa: E731

    @tf.function
    def step(batch, seed):
        with tf.GradientTape() as tape:
            out = model.compute_losses(batch, seed)
        grads = tape.gradient(out["loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return out

    start = time.time()
    for i in range(STEPS):
        step(corpus(32), tf.constant([i, 0]))
    elapsed = time.time() - start

    evals = [model.compute_losses(corpus(64), tf.constant([i, 1]), training=False)
             for i in range(6)]
    mlm_accuracy = np.mean([float(e["masked_lm_accuracy"]) for e in evals])
    probs = np.concatenate([e["disc_probs"].numpy().ravel() for e in evals])
    labels = np.concatenate([e["disc_labels"].numpy().ravel() for e in evals])
    weights = np.concatenate([e["disc_weights"].numpy().ravel() for e in evals]) > 0
    probs, labels = probs[weights], labels[weights]
    # AUC as the probability that a replaced token outscores an original one.
    positives, negatives = probs[labels > 0], probs[labels == 0]
    auc = (positives[:, None] > negatives[None, :]).mean()
    disc_accuracy = np.mean([float(e["disc_accuracy"]) for e in evals])
    majority = 1 - labels.mean()
    print(f"{STEPS} steps in {elapsed:.1f}s: masked_lm_accuracy={mlm_accuracy:.3f} "
          f"disc_auc={auc:.3f} disc_accuracy={disc_accuracy:.3f} (all-real {majority:.3f})")
    assert mlm_accuracy > 0.5  # chance: 1/20 words
    assert len(positives) > 20 and auc > 0.9  # chance: 0.5
    assert disc_accuracy > majority + 0.5 * (1 - majority)  # beats "everything is real"
