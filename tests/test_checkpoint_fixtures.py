"""The checkpoint fixtures themselves: names, shapes, file formats, and that the TF1 and HF
NumPy references agree."""

import dataclasses
import json
import os

import numpy as np
import pytest

from checkpoint_fixtures import (Sizes, hf_config, hf_from_tf1, numpy_discriminator_logits_hf,
                                 numpy_discriminator_logits_tf1, numpy_encoder_hf,
                                 numpy_encoder_tf1, numpy_generator_logits_hf,
                                 numpy_generator_logits_tf1, tf1_variables,
                                 write_chinese_bert_vocab, write_hf_model, write_tf1_checkpoint)

SIZES = Sizes.tiny()


def _inputs(sizes: Sizes, seed: int = 0):
    rng = np.random.default_rng(seed)
    b, s = 3, 10
    ids = rng.integers(1, sizes.vocab_size, (b, s)).astype(np.int32)
    mask = np.ones((b, s), np.int32)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    segments = np.zeros((b, s), np.int32)
    segments[:, 5:] = 1
    positions = np.array([[1, 4, 8], [0, 2, 6], [1, 2, 3]], np.int32)
    return ids, segments, mask, positions


def test_tf1_variables_names_shapes_and_values():
    v = tf1_variables(SIZES, 0, optimizer_slots=True)
    assert v["electra/embeddings_project/kernel"].shape == (16, 32)
    assert "generator/embeddings_project/kernel" not in v  # E == Hg in tiny()
    assert v["electra/encoder/layer_1/intermediate/dense/kernel"].shape == (32, 64)
    assert v["generator/encoder/layer_1/output/dense/kernel"].shape == (64, 16)
    assert v["discriminator_predictions/dense_1/kernel"].shape == (32, 1)
    assert v["generator_predictions/output_bias"].shape == (120,)
    assert v["global_step"].dtype == np.int64 and v["global_step"].shape == ()
    floats = {k: a for k, a in v.items() if k != "global_step"}
    assert all(a.dtype == np.float32 for a in floats.values())
    params = [k for k in floats if not k.endswith(("/adam_m", "/adam_v"))]
    assert set(floats) == set(params) | {f"{k}/adam_{s}" for k in params for s in "mv"}
    assert all(v[f"{k}/adam_v"].min() > 0 for k in params)
    flat = [a.ravel()[:1].item() for a in floats.values()]
    assert len(set(flat)) == len(flat)  # every tensor distinct
    gammas = [a for k, a in floats.items() if k.endswith("gamma")]
    assert all(abs(g.mean() - 1) < 0.2 for g in gammas)

    same = dataclasses.replace(SIZES, embedding_size=32)
    assert tf1_variables(same, 1)["generator/embeddings_project/kernel"].shape == (32, 16)
    w = tf1_variables(same, 1, generator=False)
    assert "electra/embeddings_project/kernel" not in w
    assert not any(k.startswith("generator") for k in w)


def test_tf1_checkpoint_round_trip(tmp_path):
    import tensorflow as tf

    v = tf1_variables(SIZES, 2, optimizer_slots=True)
    prefix = write_tf1_checkpoint(str(tmp_path / "ckpt" / "model.ckpt-7"), v)
    reader = tf.train.load_checkpoint(prefix)
    assert reader.get_variable_to_shape_map() == {k: list(a.shape) for k, a in v.items()}
    for name in ("global_step", "electra/encoder/layer_0/attention/self/query/kernel",
                 "generator_predictions/output_bias/adam_v"):
        np.testing.assert_array_equal(reader.get_tensor(name), v[name])
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")) == prefix


@pytest.mark.parametrize("network", ["discriminator", "generator"])
def test_hf_tensors_config_and_files(tmp_path, network):
    from safetensors import safe_open

    v = tf1_variables(SIZES, 3)
    t = hf_from_tf1(v, network)
    h = SIZES.hidden_size if network == "discriminator" else SIZES.gen_hidden_size
    assert ("electra.embeddings_project.weight" in t) == (network == "discriminator")
    assert t["electra.encoder.layer.1.intermediate.dense.weight"].shape == (64, h)
    np.testing.assert_array_equal(t["electra.embeddings.word_embeddings.weight"],
                                  v["electra/embeddings/word_embeddings"])
    if network == "discriminator":
        assert t["discriminator_predictions.dense_prediction.weight"].shape == (1, 32)
    else:
        np.testing.assert_array_equal(t["generator_lm_head.weight"],
                                      v["electra/embeddings/word_embeddings"])
        assert t["generator_predictions.dense.weight"].shape == (16, 16)
        assert "generator_lm_head.weight" not in hf_from_tf1(v, network, include_tied_head=False)
    config = hf_config(SIZES, network)
    assert config["hidden_size"] == h and config["model_type"] == "electra"
    directory = write_hf_model(str(tmp_path / network), t, config)
    with open(os.path.join(directory, "config.json")) as f:
        assert json.load(f) == config
    with safe_open(os.path.join(directory, "model.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt"}
        assert set(f.keys()) == set(t)
        np.testing.assert_array_equal(f.get_tensor("electra.encoder.layer.0.output.dense.weight"),
                                      t["electra.encoder.layer.0.output.dense.weight"])


@pytest.mark.parametrize("sizes", [SIZES, dataclasses.replace(SIZES, embedding_size=32)],
                         ids=["E<H,E=Hg", "E=H,E>Hg"])
def test_tf1_and_hf_references_agree(sizes):
    v = tf1_variables(sizes, 4)
    disc, gen = hf_from_tf1(v, "discriminator"), hf_from_tf1(v, "generator")
    assert ("electra.embeddings_project.weight" in disc) == (sizes.embedding_size != 32)
    assert ("electra.embeddings_project.weight" in gen) == (sizes.embedding_size != 16)
    ids, segments, mask, positions = _inputs(sizes)
    d_tf1 = numpy_discriminator_logits_tf1(v, ids, segments, mask, sizes.num_heads)
    d_hf = numpy_discriminator_logits_hf(disc, ids, segments, mask, sizes.num_heads)
    assert d_tf1.shape == (3, 10) and np.abs(d_tf1).max() < 1e3 and d_tf1.std() > 0.1
    np.testing.assert_allclose(d_hf, d_tf1, rtol=0, atol=1e-10)
    g_args = (ids, segments, mask, sizes.gen_num_heads, positions)
    g_tf1 = numpy_generator_logits_tf1(v, *g_args)
    assert g_tf1.shape == (3, 3, sizes.vocab_size) and np.isfinite(g_tf1).all()
    np.testing.assert_allclose(numpy_generator_logits_hf(gen, *g_args), g_tf1, rtol=0, atol=1e-10)
    tied = hf_from_tf1(v, "generator", include_tied_head=False)
    np.testing.assert_allclose(numpy_generator_logits_hf(tied, *g_args), g_tf1, rtol=0, atol=1e-10)

    # Padded keys are ignored: changing a padded token leaves the real positions unchanged.
    ids2 = ids.copy()
    ids2[2, 6] = 5
    enc = numpy_encoder_tf1(v, "electra", ids, segments, mask, sizes.num_heads)
    enc2 = numpy_encoder_hf(disc, ids2, segments, mask, sizes.num_heads)
    np.testing.assert_allclose(enc2[2, :4], enc[2, :4], rtol=0, atol=1e-10)
    # The reference is sensitive to the head split (attention is not near-uniform).
    other = numpy_discriminator_logits_tf1(v, ids, segments, mask, 1)
    assert np.abs(other - d_tf1).max() > 1e-3


def test_chinese_bert_vocab(tmp_path):
    path = str(tmp_path / "vocab.txt")
    tokens = write_chinese_bert_vocab(path)
    with open(path, encoding="utf-8") as f:
        assert f.read().splitlines() == tokens
    assert [tokens[i] for i in (0, 1, 99, 100, 101, 102, 103)] == [
        "[PAD]", "[unused1]", "[unused99]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(tokens) == len(set(tokens)) and 900 < len(tokens) < 1200
    for piece in ("的", "##的", "，", "。", "“", "）", "the", "model", "##s", "##ing", "7", "!"):
        assert piece in tokens
    more = write_chinese_bert_vocab(str(tmp_path / "v2.txt"), extra_chars="龘的é")
    assert len(more) == len(tokens) + 3 and {"龘", "##龘", "é"} <= set(more)
    assert len(more) == len(set(more))
