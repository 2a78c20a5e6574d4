"""Optimizer, schedule, accumulation and loss-scaling tests against NumPy references (docs/architecture.md, "Optimisation")."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import OptimizerConfig, from_dict
from electra_tf.training import accumulation, flops, optimizers, precision, schedule

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _OutputBias(keras.layers.Layer):
    """Adds a [V] bias named like the generator's `output_bias`."""

    def build(self, input_shape):
        self.output_bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros",
                                           name="output_bias")

    def call(self, x):
        return x + self.output_bias


def _tiny_model(seed=0):
    """Embedding -> LayerNorm -> Dense -> output_bias: one variable of every kind."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((3,), dtype="int32")
    x = keras.layers.Embedding(7, 4, name="word_embeddings")(ids)
    x = keras.layers.LayerNormalization(name="layer_norm")(x)
    x = keras.layers.Dense(5, name="dense")(x)
    x = _OutputBias(name="head")(x)
    model = keras.Model(ids, x)
    for v in model.trainable_variables:  # non-trivial starting values for every variable
        v.assign(np.random.RandomState(len(v.path)).normal(size=v.shape).astype("float32"))
    return model


def _numpy_adam(params, grads_per_step, lr_per_step, *, decay, b1=0.9, b2=0.999, eps=1e-6,
                wd=0.01, clip=None, bias_correction=False, lamb_adapt=None):
    """Reference AdamWeightDecayOptimizer (and LAMB when lamb_adapt is given) in NumPy."""
    params = [p.astype(np.float64).copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, (grads, lr) in enumerate(zip(grads_per_step, lr_per_step), start=1):
        grads = [g.astype(np.float64) for g in grads]
        if clip:
            norm = np.sqrt(sum((g ** 2).sum() for g in grads))
            grads = [g * min(1.0, clip / norm) for g in grads]
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mh, vh = m[i], v[i]
            if bias_correction:
                mh, vh = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            update = mh / (np.sqrt(vh) + eps)
            if decay[i]:
                update = update + wd * params[i]
            ratio = 1.0
            if lamb_adapt is not None and lamb_adapt[i]:
                w_norm, u_norm = np.linalg.norm(params[i]), np.linalg.norm(update)
                ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
            params[i] = params[i] - ratio * lr * update
    return params


def _random_grads(model, steps, norms, seed=1):
    rng = np.random.RandomState(seed)
    out = []
    for step in range(steps):
        grads = [rng.normal(size=v.shape) for v in model.trainable_variables]
        total = np.sqrt(sum((g ** 2).sum() for g in grads))
        out.append([(g * norms[step] / total).astype("float32") for g in grads])
    return out


def _run(optimizer, model, grads_per_step):
    variables = model.trainable_variables
    optimizer.build(variables)
    lrs = []
    for grads in grads_per_step:
        lrs.append(float(optimizer.learning_rate))
        optimizer.apply([tf.constant(g) for g in grads], variables)
    return [v.numpy() for v in variables], lrs


def test_exclusion_patterns_follow_the_reference():
    decayed = ["word_embeddings/embeddings", "discriminator/transformer_layer_0/"
               "self_attention/query/kernel", "generator/embeddings_project/kernel"]
    excluded = ["transformer_layer_0/self_attention_layer_norm/gamma",
                "embeddings_layer_norm/beta", "dense/bias", "generator_predictions/output_bias",
                "electra/embeddings/LayerNorm/gamma", "some_norm/gamma"]
    assert [optimizers.is_excluded(p) for p in decayed] == [False] * 3
    assert [optimizers.is_excluded(p) for p in excluded] == [True] * 6


@pytest.mark.parametrize("warmup,total", [(100, 1000), (10, 10000)])
def test_schedule_values_and_config_round_trip(warmup, total):
    lr = 5e-4
    lr_at = schedule.LinearWarmupDecay(lr, warmup, total)
    steps = [0, warmup // 2, warmup, total // 2, total, total + 7]
    expected = [lr * max(0.0, 1 - s / total) * min(1.0, s / warmup) for s in steps]
    got = [float(lr_at(s)) for s in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
    assert got[0] == 0.0 and got[-2] == 0.0 and got[-1] == 0.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr_at))
    assert restored.get_config() == lr_at.get_config()
    # power 2 and no warmup: (1 - s/T)^2 from the first step.
    quad = schedule.LinearWarmupDecay(1.0, 0, 100, power=2.0)
    np.testing.assert_allclose([float(quad(s)) for s in (0, 50, 100)], [1.0, 0.25, 0.0],
                               atol=1e-7)


def test_adamw_without_bias_correction_matches_numpy_for_three_steps_with_clipping():
    model = _tiny_model()
    start = [v.numpy() for v in model.trainable_variables]
    cfg = OptimizerConfig(learning_rate=1e-2, warmup_steps=2, weight_decay=0.01, clip_norm=1.0)
    optimizer = optimizers.create_optimizer(cfg, train_steps=10)
    assert isinstance(optimizer, optimizers.AdamWeightDecay) and not optimizer.bias_correction
    # Global norms 3 and 2 are clipped to 1; 0.5 is not.
    grads = _random_grads(model, 3, norms=[3.0, 0.5, 2.0])
    got, lrs = _run(optimizer, model, grads)
    np.testing.assert_allclose(lrs, [1e-2 * (1 - s / 10) * min(1, s / 2) for s in range(3)],
                               rtol=1e-6)
    decay = [not optimizers.is_excluded(v.path) for v in model.trainable_variables]
    assert decay == [True, False, False, True, False, False]  # emb, gamma, beta, kernel, bias, ob
    want = _numpy_adam(start, grads, lrs, decay=decay, clip=1.0)
    for g, w, v in zip(got, want, model.trainable_variables):
        np.testing.assert_allclose(g, w, atol=1e-6, err_msg=v.path)


def test_bias_correction_option_is_standard_adamw():
    model = _tiny_model()
    start = [v.numpy() for v in model.trainable_variables]
    optimizer = optimizers.AdamWeightDecay(learning_rate=1e-2, weight_decay_rate=0.1,
                                        bias_correction=True)
    grads = _random_grads(model, 3, norms=[1.0, 2.0, 0.3])
    got, lrs = _run(optimizer, model, grads)
    decay = [not optimizers.is_excluded(v.path) for v in model.trainable_variables]
    want = _numpy_adam(start, grads, lrs, decay=decay, wd=0.1, bias_correction=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-6)
    # Bias correction matters: without it the first step is ~sqrt(1-b2)/(1-b1) = 0.32x.
    plain = _numpy_adam(start, grads, lrs, decay=decay, wd=0.1, bias_correction=False)
    assert max(np.abs(p - w).max() for p, w in zip(plain, want)) > 1e-3


def test_weight_decay_hits_embeddings_and_kernels_only():
    model = _tiny_model()
    start = {v.path: v.numpy() for v in model.trainable_variables}
    lr, wd = 0.1, 0.5
    optimizer = optimizers.AdamWeightDecay(learning_rate=lr, weight_decay_rate=wd)
    # Zero gradients: the Adam direction is 0, only the decay moves a variable.
    _run(optimizer, model, [[np.zeros(v.shape, "float32") for v in model.trainable_variables]])
    for v in model.trainable_variables:
        factor = (1 - lr * wd) if v.path in ("word_embeddings/embeddings", "dense/kernel") else 1
        np.testing.assert_allclose(v.numpy(), start[v.path] * factor, atol=1e-7,
                                   err_msg=v.path)
    assert {v.path for v in model.trainable_variables} == {
        "word_embeddings/embeddings", "layer_norm/gamma", "layer_norm/beta", "dense/kernel",
        "dense/bias", "head/output_bias"}


def test_lamb_trust_ratio_matches_numpy_and_is_one_for_excluded():
    model = _tiny_model()
    start = [v.numpy() for v in model.trainable_variables]
    cfg = OptimizerConfig(name="lamb", learning_rate=1e-2, warmup_steps=0, weight_decay=0.01,
                          clip_norm=0.0)
    optimizer = optimizers.create_optimizer(cfg, train_steps=100)
    assert isinstance(optimizer, optimizers.Lamb) and optimizer.bias_correction
    grads = _random_grads(model, 3, norms=[1.0, 0.7, 1.5])
    got, lrs = _run(optimizer, model, grads)
    adapt = [optimizer.uses_layer_adaptation(v) for v in model.trainable_variables]
    assert adapt == [True, False, False, True, False, False]
    want = _numpy_adam(start, grads, lrs, decay=adapt, bias_correction=True, lamb_adapt=adapt)
    for g, w, v in zip(got, want, model.trainable_variables):
        np.testing.assert_allclose(g, w, atol=1e-6, err_msg=v.path)
    # The trust ratio really changes adapted variables: plain Adam+decay differs there.
    adam = _numpy_adam(start, grads, lrs, decay=adapt, bias_correction=True)
    assert np.abs(adam[0] - want[0]).max() > 1e-3
    np.testing.assert_allclose(adam[1], want[1], atol=1e-7)  # gamma: ratio 1


def test_gradient_accumulation_equals_one_large_batch():
    """4 micro-batches of 2 accumulated == one batch of 8 (mean loss), over 2 updates."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=(2, 8, 6)).astype("float32")
    y = rng.normal(size=(2, 8, 3)).astype("float32")

    def train(accum):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh"),
                                  keras.layers.LayerNormalization(), keras.layers.Dense(3)])
        cfg = OptimizerConfig(learning_rate=0.05, warmup_steps=1, clip_norm=1.0)
        optimizer = optimizers.create_optimizer(cfg, train_steps=10)
        optimizer.build(model.trainable_variables)
        accumulator = accumulation.GradientAccumulator(optimizer, model.trainable_variables, accum)

        @tf.function
        def micro_step(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(xb) - yb) ** 2)
            accumulator.accumulate(tape.gradient(loss, model.trainable_variables))

        lrs = []
        for update in range(2):
            lrs.append(float(optimizer.learning_rate))
            size = 8 // accum
            for micro in range(accum):
                micro_step(x[update, micro * size:(micro + 1) * size],
                           y[update, micro * size:(micro + 1) * size])
            tf.function(accumulator.apply)()
        sums_zero = all(float(tf.reduce_max(tf.abs(s))) == 0.0 for s in accumulator._sums)
        return ([v.numpy() for v in model.trainable_variables], lrs,
                int(optimizer.iterations), sums_zero)

    big, big_lrs, big_iters, _ = train(1)
    small, small_lrs, small_iters, zeroed = train(4)
    assert big_iters == small_iters == 2 and zeroed
    np.testing.assert_allclose(small_lrs, big_lrs, rtol=1e-7)  # once per update
    assert big_lrs[1] > 0
    for a, b in zip(big, small):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Sanity: the updates are not trivially small (so 1e-6 agreement means something).
    keras.utils.set_random_seed(3)
    assert max(np.abs(a).max() for a in big) > 0.1


def test_loss_scale_halves_on_overflow_skips_the_step_and_grows_back():
    model = _tiny_model()
    cfg = OptimizerConfig(learning_rate=1e-2, warmup_steps=0)
    optimizer = optimizers.create_optimizer(cfg, 10, mixed_precision="mixed_float16",
                                         initial_loss_scale=1024.0, dynamic_growth_steps=2)
    assert isinstance(optimizer, optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, optimizers.AdamWeightDecay)
    variables = model.trainable_variables
    optimizer.build(variables)
    np.testing.assert_allclose(float(optimizer.scale_loss(tf.constant(2.0))), 2048.0)
    before = [v.numpy() for v in variables]
    bad = [np.full(v.shape, np.inf, "float32") for v in variables]
    optimizer.apply([tf.constant(g) for g in bad], variables)
    assert float(optimizer.dynamic_scale) == 512.0
    assert int(optimizer.iterations) == 0
    for b, v in zip(before, variables):
        np.testing.assert_array_equal(b, v.numpy())
    # Two finite (scaled) steps: the gradient is unscaled by 512 and applied, then it doubles.
    good = _random_grads(model, 2, norms=[0.5, 0.5])
    optimizer.apply([tf.constant(g * 512.0) for g in good[0]], variables)
    assert float(optimizer.dynamic_scale) == 512.0 and int(optimizer.iterations) == 1
    optimizer.apply([tf.constant(g * 512.0) for g in good[1]], variables)
    assert float(optimizer.dynamic_scale) == 1024.0 and int(optimizer.iterations) == 2
    decay = [not optimizers.is_excluded(v.path) for v in variables]
    want = _numpy_adam(before, good, [1e-2 * (1 - s / 10) for s in range(2)], decay=decay,
                       clip=1.0)
    for w, v in zip(want, variables):
        np.testing.assert_allclose(v.numpy(), w, atol=1e-6)


def test_configure_precision_and_bad_names():
    try:
        assert precision.configure_precision("mixed_bfloat16").compute_dtype == "bfloat16"
        assert keras.mixed_precision.global_policy().variable_dtype == "float32"
        assert precision.configure_precision("none").name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        precision.configure_precision("fp8")
    with pytest.raises(ValueError, match="optimizer.name='sgd'"):
        optimizers.create_optimizer(OptimizerConfig(name="sgd"), 10)
    bf16 = optimizers.create_optimizer(OptimizerConfig(), 10, mixed_precision="mixed_bfloat16")
    assert isinstance(bf16, optimizers.AdamWeightDecay)  # bf16 needs no loss scaling


def test_optimizer_config_round_trip():
    optimizer = optimizers.create_optimizer(OptimizerConfig(name="lamb"), 100)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(optimizer))
    assert type(restored) is optimizers.Lamb
    assert restored.get_config() == optimizer.get_config()
    assert restored.get_config()["learning_rate"]["config"]["total_steps"] == 100
    scaled = optimizers.create_optimizer(OptimizerConfig(), 100, mixed_precision="mixed_float16")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(scaled))
    assert type(again) is optimizers.LossScaleOptimizer
    assert not again.inner_optimizer.sum_across_replicas  # the wrapper sums instead


def test_model_flops_per_sequence_for_small():
    cfg = from_dict({})  # ELECTRA-Small defaults: D 12x256 (FFN 1024), G 12x64 (FFN 256), E 128
    params = flops.non_embedding_params(cfg)
    d_layer = 4 * (256 * 256 + 256) + 2 * 256 * 1024 + 1024 + 256 + 4 * 256
    g_layer = 4 * (64 * 64 + 64) + 2 * 64 * 256 + 256 + 64 + 4 * 64
    assert params["discriminator"] == (12 * d_layer + 128 * 256 + 256 + 256 * 256 + 256 + 257
                                       + 2 * 128)
    assert params["generator"] == 12 * g_layer + 128 * 64 + 64 + 64 * 128 + 128 + 256 + 30522
    want = (6 * 128 * (params["discriminator"] + params["generator"])
            + 12 * 12 * 128 ** 2 * 256 + 12 * 12 * 128 ** 2 * 64)
    assert flops.model_flops_per_sequence(cfg) == want
    assert 7e9 < want < 9e9  # ~8 GFLOP per 128-token sequence for both networks


def test_flops_params_and_decay_groups_match_the_real_pretrainer():
    from electra_tf.modeling.pretrainer import ElectraPretrainer
    cfg = from_dict({"model": dict(vocab_size=50, embedding_size=16, hidden_size=32,
                                   num_layers=2, num_heads=2, intermediate_size=64),
                     "generator": dict(hidden_fraction=0.25)})
    model = ElectraPretrainer(cfg)
    tables = ("token_embedding/embeddings", "position_embedding/embeddings",
              "segment_embedding/embeddings")
    counted = sum(int(np.prod(v.shape)) for v in model.trainable_variables
                  if not v.path.endswith(tables))
    params = flops.non_embedding_params(cfg)
    assert counted == params["discriminator"] + params["generator"]
    # Decayed: exactly the kernels and the embedding tables (docs/architecture.md, "Optimisation").
    optimizer = optimizers.create_optimizer(OptimizerConfig(), 10)
    optimizer.build(model.trainable_variables)
    for v in model.trainable_variables:
        want = v.path.endswith("/kernel") or v.path.endswith(tables)
        assert optimizer.uses_weight_decay(v) == want, v.path


def test_matmul_peak_is_consistent_with_a_timed_matmul():
    for dtype in ("float32", "bfloat16"):
        peak = flops.measure_matmul_peak(dtype, size=256, seconds=0.2)
        assert 1e8 < peak < 1e13, dtype  # 0.1 GFLOP/s .. 10 TFLOP/s: a plausible CPU range


_DISTRIBUTED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from electra_tf.config import OptimizerConfig
    from electra_tf.training import accumulation, flops, optimizers, precision, schedule

    rng = np.random.RandomState(0)
    x = rng.normal(size=(3, 8, 6)).astype("float32") * 4
    y = rng.normal(size=(3, 8, 3)).astype("float32")

    def train(strategy, accum, precision, overflow_at=None):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                                      keras.layers.LayerNormalization(), keras.layers.Dense(3)])
            cfg = OptimizerConfig(learning_rate=0.05, warmup_steps=1, clip_norm=0.5)
            optimizer = optimizers.create_optimizer(cfg, 10, mixed_precision=precision,
                                                 initial_loss_scale=256.0)
            optimizer.build(model.trainable_variables)
            accumulator = accumulation.GradientAccumulator(optimizer, model.trainable_variables,
                                                      accum)
        replicas = strategy.num_replicas_in_sync

        def replica_micro_step(xb, yb, poison):
            with tf.GradientTape() as tape:
                # Mean over the global micro-batch: each replica's loss is divided by replicas.
                loss = tf.reduce_mean((model(xb) - yb) ** 2) / replicas
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            # An overflow on the LAST replica only (Keras would look at replica 0 only).
            ctx = tf.distribute.get_replica_context()
            bad = tf.logical_and(poison, tf.equal(ctx.replica_id_in_sync_group, replicas - 1))
            grads[0] = tf.where(bad, np.inf, grads[0])
            accumulator.accumulate(grads)

        @tf.function
        def micro_step(xb, yb, poison):
            ds = strategy.experimental_distribute_values_from_function(
                lambda ctx: (tf.split(xb, replicas)[ctx.replica_id_in_sync_group],
                             tf.split(yb, replicas)[ctx.replica_id_in_sync_group]))
            strategy.run(replica_micro_step, args=ds + (poison,))

        @tf.function
        def apply():
            strategy.run(accumulator.apply)

        size = 8 // accum
        for update in range(3):
            for micro in range(accum):
                sl = slice(micro * size, (micro + 1) * size)
                micro_step(tf.constant(x[update, sl]), tf.constant(y[update, sl]),
                           tf.constant(update == overflow_at and micro == 0))
            apply()
        scale = (float(optimizer.dynamic_scale.value.numpy()) if precision == "mixed_float16"
                 else None)
        return ([v.numpy() for v in model.trainable_variables],
                int(optimizer.iterations.value.numpy()), scale)

    default = tf.distribute.get_strategy()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ref, ref_iters, _ = train(default, 1, "none")
    out = {"ref_iterations": ref_iters}
    for name, strategy, accum, precision in [("mirrored", mirrored, 1, "none"),
                                             ("mirrored_accum", mirrored, 2, "none"),
                                             ("mirrored_accum_lso", mirrored, 2, "mixed_float16"),
                                             ("accum_lso", default, 4, "mixed_float16")]:
        got, iters, _ = train(strategy, accum, precision)
        out[name] = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
        out[name + "_iterations"] = iters
    # Overflow on replica 1 during update 1: that update is skipped on both replicas, the
    # scale halves, and the variables stay finite and equal to a run without update 1 data.
    got, iters, scale = train(mirrored, 2, "mixed_float16", overflow_at=1)
    out["overflow_finite"] = bool(all(np.isfinite(v).all() for v in got))
    out["overflow_iterations"] = iters
    out["overflow_scale"] = scale
    print(json.dumps(out))
""")


def test_accumulation_clipping_and_loss_scaling_under_mirrored_strategy(tmp_path):
    """Two logical CPUs: the same updates as one device, incl. accumulation and fp16 scaling.

    Runs in a subprocess because logical devices must be set before TensorFlow starts.
    The clip norm (0.5) is below the gradient norm, so clipping per replica instead of on the
    summed gradient would show up as a difference.
    """
    script = tmp_path / "mirrored.py"
    script.write_text(_DISTRIBUTED_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("mirrored", "mirrored_accum", "mirrored_accum_lso", "accum_lso"):
        assert out[name] < 1e-6, (name, out)
        assert out[name + "_iterations"] == out["ref_iterations"] == 3, out
    assert out["overflow_finite"] and out["overflow_iterations"] == 2, out
    assert out["overflow_scale"] == 128.0, out  # 256 halved once, no growth in 2 steps
