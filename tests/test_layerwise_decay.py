"""Layer-wise learning-rate decay: every variable's rate, and the optimizer applying it."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import OptimizerConfig, from_dict
from electra_tf.modeling.task_models import build_task_model
from electra_tf.training import layerwise_decay, optimizers

L = 3


def _model(kind="classification"):
    cfg = from_dict({"model": dict(vocab_size=50, embedding_size=8, hidden_size=16,
                                   num_layers=L, num_heads=2, intermediate_size=32),
                     "data": dict(max_seq_length=8)})
    return build_task_model(cfg, kind, 3)


def _expected(path, decay, reference):
    """The rule written out: depth 0 embeddings, k + 1 layer k, head on top."""
    top = L + 2 if reference else L + 1
    if "task_head" in path:
        return 1.0
    for k in range(L):
        if f"transformer_layer_{k}/" in path:
            return decay ** (top - (k + 1))
    assert "embeddings" in path, path
    return decay ** top


@pytest.mark.parametrize("reference", [False, True])
def test_every_variable_gets_its_depths_rate(reference):
    model = _model()
    paths = [v.path for v in model.trainable_variables]
    assert any("embeddings_project" in p for p in paths)  # E != H: the projection is depth 0
    for path in paths:
        got = layerwise_decay.learning_rate_multiplier(path, L, 0.8, reference=reference)
        assert got == pytest.approx(_expected(path, 0.8, reference), rel=1e-12), path
    # The top encoder layer: decay^1 fixed, decay^2 in the reference's (known bug) form.
    top = layerwise_decay.learning_rate_multiplier(
        f"x/transformer_layer_{L - 1}/feedforward_output_dense/kernel", L, 0.8, reference)
    assert top == pytest.approx(0.64 if reference else 0.8)
    with pytest.raises(ValueError, match="layer 7 but the encoder has 3 layers"):
        layerwise_decay.variable_depth("x/transformer_layer_7/kernel", L)


def test_optimizer_applies_the_multiplier_per_variable():
    model = _model("tagging")
    variables = model.trainable_variables
    lr = 1e-3
    optimizer = optimizers.create_optimizer(
        OptimizerConfig(learning_rate=lr, warmup_steps=0, weight_decay=0.0, clip_norm=0.0),
        train_steps=1000,
        learning_rate_multiplier=lambda p: layerwise_decay.learning_rate_multiplier(
            p, L, 0.5))
    optimizer.build(variables)
    before = [v.numpy().copy() for v in variables]
    optimizer.apply([tf.ones_like(v) for v in variables], variables)
    # First Adam step without bias correction: direction (1-b1) / (sqrt(1-b2) + eps), the
    # schedule at step 0 of a no-warmup linear decay is the peak rate.
    direction = 0.1 / (np.sqrt(0.001) + 1e-6)
    for v, b in zip(variables, before):
        moved = float(np.mean(b - v.numpy()))
        expected = lr * direction * layerwise_decay.learning_rate_multiplier(v.path, L, 0.5)
        assert moved == pytest.approx(expected, rel=1e-4), v.path
