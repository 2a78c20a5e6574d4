"""Checkpoint conversion (tools/convert_checkpoint.py, electra_tf/convert/).

No released checkpoint can be downloaded here, so each source layout is written by the test
fixtures (tests/checkpoint_fixtures.py, independent of electra_tf) with the exact names and
shapes of the released models, filled with distinct random values. Each test checks where
every tensor landed with its own table of our variable paths (not the converter's), and
compares our model's outputs with an independent NumPy forward pass.
"""

import collections
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from checkpoint_fixtures import (Sizes, hf_config, hf_from_tf1, numpy_discriminator_logits_hf,
                                 numpy_discriminator_logits_tf1, numpy_generator_logits_hf,
                                 numpy_generator_logits_tf1, tf1_variables, write_hf_model,
                                 write_tf1_checkpoint, write_chinese_bert_vocab)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Our variable paths -> reference TF1 names: written here from the reference's naming,
# independently of electra_tf/convert/layout.py.
_NET = {"discriminator": "electra", "generator": "generator"}
_RULES = [
    (r"(?:discriminator/)?embeddings/token_embedding/embeddings",
     lambda m: "electra/embeddings/word_embeddings"),
    (r"(?:discriminator/)?embeddings/position_embedding/embeddings",
     lambda m: "electra/embeddings/position_embeddings"),
    (r"(?:discriminator/)?embeddings/segment_embedding/embeddings",
     lambda m: "electra/embeddings/token_type_embeddings"),
    (r"(?:discriminator/)?embeddings/embeddings_layer_norm/(gamma|beta)",
     lambda m: f"electra/embeddings/LayerNorm/{m[1]}"),
    (r"(discriminator|generator)/embeddings_project/(kernel|bias)",
     lambda m: f"{_NET[m[1]]}/embeddings_project/{m[2]}"),
    (r"(discriminator|generator)/transformer_layer_(\d+)/self_attention_layer/"
     r"(query|key|value)/(kernel|bias)",
     lambda m: f"{_NET[m[1]]}/encoder/layer_{m[2]}/attention/self/{m[3]}/{m[4]}"),
    (r"(discriminator|generator)/transformer_layer_(\d+)/self_attention_layer/"
     r"attention_output/(kernel|bias)",
     lambda m: f"{_NET[m[1]]}/encoder/layer_{m[2]}/attention/output/dense/{m[3]}"),
    (r"(discriminator|generator)/transformer_layer_(\d+)/self_attention_layer_norm/(gamma|beta)",
     lambda m: f"{_NET[m[1]]}/encoder/layer_{m[2]}/attention/output/LayerNorm/{m[3]}"),
    (r"(discriminator|generator)/transformer_layer_(\d+)/feedforward_intermediate_dense/"
     r"(kernel|bias)",
     lambda m: f"{_NET[m[1]]}/encoder/layer_{m[2]}/intermediate/dense/{m[3]}"),
    (r"(discriminator|generator)/transformer_layer_(\d+)/feedforward_output_dense/(kernel|bias)",
     lambda m: f"{_NET[m[1]]}/encoder/layer_{m[2]}/output/dense/{m[3]}"),
    (r"(discriminator|generator)/transformer_layer_(\d+)/feedforward_layer_norm/(gamma|beta)",
     lambda m: f"{_NET[m[1]]}/encoder/layer_{m[2]}/output/LayerNorm/{m[3]}"),
    (r"discriminator/discriminator_predictions/dense/(kernel|bias)",
     lambda m: f"discriminator_predictions/dense/{m[1]}"),
    (r"discriminator/discriminator_predictions/dense_prediction/(kernel|bias)",
     lambda m: f"discriminator_predictions/dense_1/{m[1]}"),
    (r"generator_predictions/intermediate_dense/(kernel|bias)",
     lambda m: f"generator_predictions/dense/{m[1]}"),
    (r"generator_predictions/intermediate_layer_norm/(gamma|beta)",
     lambda m: f"generator_predictions/LayerNorm/{m[1]}"),
    (r"generator_predictions/output_bias", lambda m: "generator_predictions/output_bias"),
]


def _reference_name(path):
    for pattern, name in _RULES:
        match = re.fullmatch(pattern, path)
        if match:
            return name(match)
    raise AssertionError(f"our variable {path} has no reference name")


def assert_every_tensor_landed(model, source, *, fresh=(), atol=0.0):
    """Every source tensor is in exactly one variable of `model`, reshaped, and every
    variable of `model` holds a source tensor (none left at its initial value), except the
    `fresh` name prefixes."""
    hits = collections.Counter()
    for variable in model.weights:
        name = _reference_name(variable.path)
        if name.startswith(tuple(fresh)):
            continue
        assert name in source, f"{variable.path} ({name}) is not from the source"
        hits[name] += 1
        expected = np.asarray(source[name], np.float32)
        got = variable.numpy()
        assert got.size == expected.size, name
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=0, atol=atol,
                                   err_msg=name)
    weights = {n for n in source if not n.startswith(tuple(fresh))
               and n != "global_step" and not n.endswith(("/adam_m", "/adam_v"))}
    assert set(hits) == weights, sorted(weights ^ set(hits))[:5]
    assert set(hits.values()) == {1}, [n for n, c in hits.items() if c != 1]


def _inputs(vocab_size, seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(104, vocab_size, (3, 12)).astype("int32")
    ids[:, 0] = 101
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    segments = np.zeros_like(ids)
    segments[:, 6:] = 1
    segments[mask == 0] = 0
    positions = np.array([[1, 3, 4], [2, 5, 7], [1, 2, 3]], "int32")
    return ids, segments, mask, positions


def _batch(ids, segments, mask):
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def _generator_logits(model, ids, segments, mask, positions):
    hidden = model.generator(_batch(ids, segments, mask))
    return model.masked_lm_head(hidden, mask_positions=positions).numpy()


@pytest.fixture(scope="module")
def zh(tmp_path_factory):
    """A Chinese BERT-style vocabulary and tiny sizes with its vocabulary size."""
    root = tmp_path_factory.mktemp("zh")
    tokens = write_chinese_bert_vocab(str(root / "vocab.txt"))
    return root, tokens, dataclasses.replace(Sizes.tiny(), vocab_size=len(tokens))


@pytest.fixture(scope="module")
def google(zh):
    """A TF1 checkpoint in the released layout (optimizer slots and global_step included),
    with vocab.txt and a config JSON beside it, as HFL's downloads are."""
    root, tokens, sizes = zh
    source = root / "google"
    source.mkdir()
    variables = tf1_variables(sizes, 7, optimizer_slots=True)
    prefix = write_tf1_checkpoint(str(source / "electra_tiny.ckpt"), variables)
    write_chinese_bert_vocab(str(source / "vocab.txt"))
    config = source / "discriminator_config.json"
    config.write_text(json.dumps({"num_attention_heads": sizes.num_heads}))
    return dict(prefix=prefix, variables=variables, sizes=sizes, config=str(config),
                root=root)


@pytest.fixture(scope="module")
def converted(google):
    from electra_tf.convert import importer

    out = str(google["root"] / "converted")
    lines = []
    record = importer.convert("google_tf1", google["prefix"], out, config=google["config"],
                              log=lines.append)
    return dict(google, model_dir=out, record=record, lines=lines)


def test_google_tf1_lands_exactly_and_matches_numpy_forward(converted):
    from electra_tf import model_checkpoints
    from electra_tf import model_dir as model_dir_lib
    from electra_tf import model_loading

    variables, sizes = converted["variables"], converted["sizes"]
    weights = {n: v for n, v in variables.items()
               if not n.endswith(("adam_m", "adam_v")) and n != "global_step"}
    model = model_loading.load_pretrainer(converted["model_dir"])
    assert len(model.weights) == len(weights) == 80
    assert_every_tensor_landed(model, weights)
    record = converted["record"]
    assert record["tensors_imported"] == 80 and record["generator"] == "imported"
    assert record["optimizer_state_skipped"] == 2 * 80 + 1  # Adam m, v per weight; global_step

    ids, segments, mask, positions = _inputs(sizes.vocab_size)
    ours = model.discriminator(_batch(ids, segments, mask)).numpy()
    reference = numpy_discriminator_logits_tf1(variables, ids, segments, mask, sizes.num_heads)
    assert np.abs(ours - reference)[mask > 0].max() < 1e-4
    ours = _generator_logits(model, ids, segments, mask, positions)
    reference = numpy_generator_logits_tf1(variables, ids, segments, mask,
                                           sizes.gen_num_heads, positions)
    assert np.abs(ours - reference).max() < 1e-4

    cfg = model_dir_lib.read_config(converted["model_dir"])
    assert (cfg.model.num_heads, cfg.generator_hidden_size(), cfg.generator_num_heads(),
            cfg.model.max_position_embeddings) == (2, 16, 1, 64)
    # Derived again from the sequence length of the first run, not frozen at conversion.
    import yaml
    with open(os.path.join(converted["model_dir"], "config.yaml"), encoding="utf-8") as f:
        assert yaml.safe_load(f)["objective"]["max_predictions_per_seq"] is None
    assert not any("heads assumed" in line for line in converted["lines"])  # --config given
    assert model_checkpoints.is_weights_only(
        model_checkpoints.latest_checkpoint(converted["model_dir"]))


def test_huggingface_pair_lands_exactly_and_matches_numpy_forward(zh, tmp_path):
    from electra_tf import model_loading
    from electra_tf.convert import importer

    _, tokens, sizes = zh
    sizes = dataclasses.replace(sizes, embedding_size=32)  # D: no projection; G: 32 -> 16
    variables = tf1_variables(sizes, 3)
    disc = hf_from_tf1(variables, "discriminator")
    gen = hf_from_tf1(variables, "generator", include_tied_head=False)  # as save_pretrained
    write_hf_model(str(tmp_path / "d"), disc, hf_config(sizes, "discriminator"))
    write_hf_model(str(tmp_path / "g"), gen, hf_config(sizes, "generator"))
    write_chinese_bert_vocab(str(tmp_path / "d" / "vocab.txt"))
    importer.convert("huggingface", str(tmp_path / "d"), str(tmp_path / "out"),
                     generator_input=str(tmp_path / "g"), log=lambda _: None)

    model = model_loading.load_pretrainer(str(tmp_path / "out"))
    assert model.discriminator_encoder.embeddings_project is None
    assert_every_tensor_landed(model, variables)
    ids, segments, mask, positions = _inputs(sizes.vocab_size, 1)
    ours = model.discriminator(_batch(ids, segments, mask)).numpy()
    reference = numpy_discriminator_logits_hf(disc, ids, segments, mask, sizes.num_heads)
    assert np.abs(ours - reference)[mask > 0].max() < 1e-4
    ours = _generator_logits(model, ids, segments, mask, positions)
    reference = numpy_generator_logits_hf(gen, ids, segments, mask, sizes.gen_num_heads,
                                          positions)
    assert np.abs(ours - reference).max() < 1e-4


def test_round_trip_ours_to_huggingface_and_back_is_exact(converted, tmp_path):
    from safetensors.numpy import load_file

    from electra_tf import model_loading
    from electra_tf.convert import exporter, importer

    exporter.to_huggingface(converted["model_dir"], str(tmp_path / "hf_d"),
                            generator_output=str(tmp_path / "hf_g"), log=lambda _: None)
    sizes, variables = converted["sizes"], converted["variables"]
    # The files are exactly what transformers' own layout holds for these weights.
    for network, directory in (("discriminator", "hf_d"), ("generator", "hf_g")):
        written = load_file(str(tmp_path / directory / "model.safetensors"))
        expected = hf_from_tf1(variables, network)
        assert sorted(written) == sorted(expected)
        for name, value in expected.items():
            np.testing.assert_array_equal(written[name], value, err_msg=name)
        config = json.loads((tmp_path / directory / "config.json").read_text())
        for key, value in hf_config(sizes, network).items():
            assert config[key] == value, key
    assert (tmp_path / "hf_d" / "vocab.txt").read_text().split("\n")[100] == "[UNK]"
    tokenizer_config = json.loads((tmp_path / "hf_d" / "tokenizer_config.json").read_text())
    assert tokenizer_config["do_lower_case"] is True

    importer.convert("huggingface", str(tmp_path / "hf_d"), str(tmp_path / "back"),
                     generator_input=str(tmp_path / "hf_g"), log=lambda _: None)
    before = model_loading.load_pretrainer(converted["model_dir"])
    after = model_loading.load_pretrainer(str(tmp_path / "back"))
    assert [v.path for v in before.weights] == [v.path for v in after.weights]
    for a, b in zip(before.weights, after.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def _approximate_gelu_copy(encoder):
    """Our encoder rebuilt with keras-hub's tanh GELU, same weights."""
    import keras

    from electra_tf.modeling.encoder import ElectraEncoder

    config = encoder.get_config()
    copy = ElectraEncoder.from_config(config)
    copy.set_weights(encoder.get_weights())
    for layer in copy.transformer_layers:
        layer._feedforward_intermediate_dense.activation = (
            lambda x: keras.activations.gelu(x, approximate=True))  # keras-hub's GELU
    return copy


def test_round_trip_ours_to_keras_hub_preset_and_back_is_exact(converted, tmp_path):
    import keras_hub

    from electra_tf import model_loading
    from electra_tf.convert import exporter, importer

    preset = str(tmp_path / "preset")
    exporter.to_keras_hub(converted["model_dir"], preset, log=lambda _: None)
    backbone = keras_hub.models.ElectraBackbone.from_preset(preset)
    tokenizer = keras_hub.models.ElectraTokenizer.from_preset(preset)
    assert tokenizer.get_vocabulary()[:104][-4:] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    discriminator = model_loading.load_discriminator(converted["model_dir"])
    encoder = discriminator.encoder
    ids, segments, mask, _ = _inputs(converted["sizes"].vocab_size, 2)
    theirs = backbone(_batch(ids, segments, mask))["sequence_output"].numpy()
    ours_approx = _approximate_gelu_copy(encoder)(_batch(ids, segments, mask)).numpy()
    assert np.abs(theirs - ours_approx)[mask > 0].max() < 1e-5
    ours_exact = encoder(_batch(ids, segments, mask)).numpy()
    assert np.abs(theirs - ours_exact)[mask > 0].max() > 1e-6  # the GELUs do differ

    lines = []
    importer.convert("keras_hub", preset, str(tmp_path / "back"), log=lines.append)
    assert any("discriminator head is freshly initialised" in line for line in lines)
    assert any("--init_generator=random" in line for line in lines)
    back = model_loading.load_discriminator(str(tmp_path / "back"))
    variables = converted["variables"]
    # The preset holds the discriminator's encoder: no head (fresh here), no generator.
    assert_every_tensor_landed(back, variables, fresh=("discriminator_predictions/",
                                                       "generator"))
    heads = [v for v in back.weights if "discriminator_predictions" in v.path]
    assert len(heads) == 4
    for v in heads:  # the fresh head is not the source's
        assert not np.allclose(v.numpy().ravel()[:4], np.ravel(
            variables[_reference_name(v.path)])[:4])


def test_continue_pretraining_from_import_with_a_fresh_optimizer(converted, tmp_path):
    """The converted dir trains as it is: weights from ckpt-0, a fresh optimizer from step 0
    (learning rate 1e-9 here, so the weights must stay the imported ones), a relaxed
    sequence length before the first run, and an ordinary resume afterwards."""
    import shutil

    import keras
    import tensorflow as tf

    from electra_tf import config as config_lib
    from electra_tf import model_checkpoints
    from electra_tf import model_dir as model_dir_lib
    from electra_tf import model_loading
    from electra_tf.training import trainer
    from test_trainer import write_data

    model_dir = str(tmp_path / "continued")
    shutil.copytree(converted["model_dir"], model_dir)
    tokens = model_dir_lib.open_model_dir(model_dir).tokens
    data = write_data(str(tmp_path / "data"), tokens, examples=32, seq=32)
    overrides = ["data.max_seq_length=32", "objective.max_predictions_per_seq=5",
                 "training.batch_size=8", "training.steps_per_loop=2", "training.log_every=2",
                 "training.checkpoint_every=4", "optimizer.warmup_steps=2",
                 "optimizer.learning_rate=1e-9", "runtime.peak_tflops=0.1"]
    cfg = config_lib.load_config(os.path.join(model_dir, "config.yaml"),
                                 overrides + ["training.train_steps=4"])
    lines = []
    trainer.train(cfg, train_data=data, model_dir=model_dir, log_fn=lines.append)
    assert any("initialised from the converted weights" in line and "ckpt-0" in line
               for line in lines)
    keras.backend.clear_session()
    latest = model_checkpoints.latest_checkpoint(model_dir)
    assert latest.endswith("ckpt-4") and not model_checkpoints.is_weights_only(latest)
    reader = tf.train.load_checkpoint(latest)
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 4
    assert int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == 4
    model = model_loading.load_pretrainer(model_dir)
    # Random initial weights would differ by ~0.1; Adam moves each by <= ~lr per step.
    assert_every_tensor_landed(model, converted["variables"], atol=1e-6)
    keras.backend.clear_session()

    cfg = config_lib.load_config(os.path.join(model_dir, "config.yaml"),
                                 overrides + ["training.train_steps=6"])
    lines = []
    trainer.train(cfg, train_data=data, model_dir=model_dir, log_fn=lines.append)
    assert any("resumed from" in line and "ckpt-4" in line for line in lines)
    keras.backend.clear_session()
    # Trained now: the sequence length is fixed like any run's.
    cfg = config_lib.load_config(os.path.join(model_dir, "config.yaml"),
                                 ["data.max_seq_length=16", "training.train_steps=8"])
    with pytest.raises(model_dir_lib.ModelDirError, match="data.max_seq_length"):
        trainer.train(cfg, train_data=data, model_dir=model_dir, log_fn=lines.append)


def test_discriminator_only_fine_tunes_and_exports_but_needs_a_generator_to_pretrain(
        zh, tmp_path):
    import keras

    from electra_tf import config as config_lib
    from electra_tf import model_dir as model_dir_lib
    from electra_tf import model_loading
    from electra_tf.convert import importer
    from electra_tf.training import trainer
    from electra_tf.training.finetuning import FinetuneOptions, run_finetuning
    from test_trainer import write_data

    _, tokens, sizes = zh
    variables = tf1_variables(sizes, 11, generator=False)
    write_hf_model(str(tmp_path / "d"), hf_from_tf1(variables), hf_config(sizes))
    vocab = str(tmp_path / "vocab.txt")
    write_chinese_bert_vocab(vocab)
    lines = []
    record = importer.convert("huggingface", str(tmp_path / "d"), str(tmp_path / "disc"),
                              vocab=vocab, log=lines.append)
    assert record["generator"] == "none"
    assert any("--init_generator=random" in line for line in lines)

    # Pretraining refuses, naming both fixes.
    data = write_data(str(tmp_path / "data"), tokens, examples=16, seq=32)
    cfg = config_lib.load_config(str(tmp_path / "disc" / "config.yaml"),
                                 ["data.max_seq_length=32", "training.train_steps=2"])
    with pytest.raises(model_dir_lib.ModelDirError,
                       match="--generator_input=GENERATOR or --init_generator=random"):
        trainer.train(cfg, train_data=data, model_dir=str(tmp_path / "disc"))

    # Fine-tuning starts from it as it is (Chinese labelled text).
    task = tmp_path / "task"
    task.mkdir()
    rows = ["text,label"] + [f"{'好' * (i % 5 + 1)}{'的'},{i % 2}" for i in range(24)]
    for split in ("train", "dev"):
        (task / f"{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    options = FinetuneOptions(task="classification", data_dir=str(task),
                              output_dir=str(tmp_path / "ft"), init=str(tmp_path / "disc"),
                              epochs=1, batch_size=8, max_seq_length=16, show_progress=False)
    results = run_finetuning(options, log=lambda *_: None)
    assert results is not None and os.path.isfile(tmp_path / "ft" / "results.json")
    keras.backend.clear_session()

    # With a fresh generator it pretrains; the discriminator keeps the imported weights.
    importer.convert("huggingface", str(tmp_path / "d"), str(tmp_path / "full"), vocab=vocab,
                     init_generator="random", log=lambda _: None)
    model = model_loading.load_pretrainer(str(tmp_path / "full"))
    assert_every_tensor_landed(model, variables, fresh=("generator",))
    assert model_dir_lib.read_config(str(tmp_path / "full")).generator_hidden_size() == 8
    keras.backend.clear_session()
    cfg = config_lib.load_config(str(tmp_path / "full" / "config.yaml"),
                                 ["data.max_seq_length=32", "training.train_steps=2",
                                  "training.batch_size=8", "runtime.peak_tflops=0.1",
                                  "objective.max_predictions_per_seq=5"])
    result = trainer.train(cfg, train_data=data, model_dir=str(tmp_path / "full"),
                           log_fn=lambda _: None)
    assert result["step"] == 2 and np.isfinite(result["train"]["loss"])


def _run_tool(*args):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_checkpoint.py"),
                           *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_bad_checkpoint_lists_every_problem_and_writes_nothing(zh, google, tmp_path):
    _, tokens, sizes = zh
    variables = tf1_variables(sizes, 5)
    del variables["electra/encoder/layer_1/output/dense/bias"]          # missing
    variables["electra/encoder/layer_0/extra_scale"] = np.ones(3, np.float32)  # unknown
    variables["electra/encoder/layer_0/intermediate/dense/bias"] = np.zeros(63, np.float32)
    prefix = write_tf1_checkpoint(str(tmp_path / "bad" / "model.ckpt"), variables)
    short_vocab = tmp_path / "vocab.txt"
    short_vocab.write_text("\n".join(tokens[:-3]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = _run_tool("--from=google_tf1", f"--input={prefix}",
                             f"--config={google['config']}", f"--vocab={short_vocab}",
                             f"--output={out}")
    assert code == 1, err
    lines = err.strip().splitlines()
    # (TensorFlow's own start-up log lines come first; the tool's report is the end.)
    lines = lines[[i for i, line in enumerate(lines) if line.startswith("convert_")][0]:]
    assert lines[0] == "convert_checkpoint: 4 problem(s); nothing was written:"
    assert len(lines) == 5 and all(line.startswith("  ") for line in lines[1:])
    text = "\n".join(lines)
    assert "missing electra/encoder/layer_1/output/dense/bias [32]" in text
    assert "unknown variable electra/encoder/layer_0/extra_scale [3]" in text
    assert "intermediate/dense/bias has shape [63], expected [64]" in text
    assert f"has {len(tokens) - 3} tokens but the word embeddings have {len(tokens)}" in text
    assert "Traceback" not in err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_other_bad_inputs_are_refused_with_their_reason(zh, google, tmp_path):
    from electra_tf.convert import importer

    _, tokens, sizes = zh

    def problems(*args, **kwargs):
        with pytest.raises(importer.ConversionError) as info:
            importer.convert(*args, log=lambda _: None, **kwargs)
        return "\n".join(info.value.problems)

    # Not a checkpoint at all.
    (tmp_path / "notes.txt").write_text("hello")
    assert "is not a TF checkpoint" in problems("google_tf1", str(tmp_path / "notes.txt"),
                                                str(tmp_path / "o1"))
    assert "no config.json" in problems("huggingface", str(tmp_path), str(tmp_path / "o2"))
    # pytorch_model.bin only: refused with the way to convert it.
    torch_dir = tmp_path / "torch"
    torch_dir.mkdir()
    (torch_dir / "config.json").write_text(json.dumps(hf_config(sizes)))
    (torch_dir / "pytorch_model.bin").write_bytes(b"\x80\x02")
    assert "safe_serialization=True" in problems("huggingface", str(torch_dir),
                                                 str(tmp_path / "o3"))
    # A generator from a different model: other embeddings, and another vocabulary size.
    disc = tf1_variables(sizes, 1)
    other = tf1_variables(sizes, 2)
    write_hf_model(str(tmp_path / "d"), hf_from_tf1(disc), hf_config(sizes))
    write_hf_model(str(tmp_path / "g"), hf_from_tf1(other, "generator"),
                   hf_config(sizes, "generator"))
    vocab = str(tmp_path / "vocab.txt")
    write_chinese_bert_vocab(vocab)
    text = problems("huggingface", str(tmp_path / "d"), str(tmp_path / "o4"),
                    generator_input=str(tmp_path / "g"), vocab=vocab)
    assert "differs from the discriminator's" in text and "different model" in text
    small = dataclasses.replace(sizes, vocab_size=sizes.vocab_size - 1)
    write_hf_model(str(tmp_path / "g2"), hf_from_tf1(tf1_variables(small, 3), "generator"),
                   hf_config(small, "generator"))
    assert "vocab_size=" in problems("huggingface", str(tmp_path / "d"), str(tmp_path / "o5"),
                                     generator_input=str(tmp_path / "g2"), vocab=vocab)
    # A generator passed as the discriminator.
    assert "--generator_input" in problems("huggingface", str(tmp_path / "g"),
                                           str(tmp_path / "o6"), vocab=vocab)
    # An existing output is never touched.
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert "already exists" in problems("google_tf1", google["prefix"], str(existing),
                                        config=google["config"])
    assert (existing / "keep.txt").read_text() == "mine"
    # An output under a file: refused before anything is read.
    assert "which is a file" in problems("google_tf1", google["prefix"],
                                         str(tmp_path / "notes.txt" / "sub"),
                                         config=google["config"])
    # The reference's untied generator embeddings (its own block at the generator's width).
    untied = dict(tf1_variables(sizes, 4))
    untied["generator/embeddings/word_embeddings"] = np.zeros((sizes.vocab_size, 16), "f")
    untied_prefix = write_tf1_checkpoint(str(tmp_path / "untied" / "model.ckpt"), untied)
    assert "untied_generator_embeddings option" in problems(
        "google_tf1", untied_prefix, str(tmp_path / "o7"), config=google["config"])
    assert not [p for p in os.listdir(tmp_path) if p.startswith("o") and len(p) == 2]


def test_binaries_take_the_converted_dir_as_it_is(converted, tmp_path):
    """The export binary serves the converted dir (SavedModel and TFLite, text input with the
    Chinese vocabulary, each verified against the Keras model); the tool exports it on."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "electra_tf.export",
                           f"--model_dir={converted['model_dir']}",
                           f"--output={tmp_path / 'served'}", "--format=all", "--quantize=none"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["passed"] is True and report["task"] == "replaced_token"

    code, out, err = _run_tool("--to=huggingface", f"--model_dir={converted['model_dir']}",
                               f"--output={tmp_path / 'hf'}")
    assert code == 0, err
    assert "ElectraForPreTraining" in out and "--generator_output" in out
    assert sorted(os.listdir(tmp_path / "hf")) == [
        "config.json", "model.safetensors", "special_tokens_map.json",
        "tokenizer_config.json", "vocab.txt"]
    code, _, err = _run_tool("--to=huggingface", f"--model_dir={converted['model_dir']}")
    assert code == 2 and "--output is required" in err
    code, _, err = _run_tool("--from=huggingface", "--to=keras_hub", "--output=x")
    assert code == 2 and "exactly one of --from" in err
    for flags, word in ((["--to=keras_hub", "--model_dir=m", "--init_generator=random"],
                         "--init_generator is for --from"),
                        (["--from=huggingface", "--input=i", "--config=c.json"],
                         "--config is for --from=google_tf1")):
        code, _, err = _run_tool(*flags, "--output=x")
        assert code == 2 and word in err, err
    # Two outputs, the second impossible: refused first, so neither is written.
    (tmp_path / "afile").write_text("x")
    code, _, err = _run_tool("--to=huggingface", f"--model_dir={converted['model_dir']}",
                             f"--output={tmp_path / 'hf2'}",
                             f"--generator_output={tmp_path / 'afile' / 'gen'}")
    assert code == 1 and "which is a file" in err and "Traceback" not in err
    assert not (tmp_path / "hf2").exists()
    # A checkpoint given as a model dir: pointed to --from.
    code, _, err = _run_tool("--to=huggingface", f"--model_dir={tmp_path / 'hf'}",
                             f"--output={tmp_path / 'hf3'}")
    assert code == 1 and "import it with --from first" in err


def test_chinese_bert_vocabulary_tokenizes_like_bert(zh):
    """A Chinese BERT-style vocabulary ([UNK] at 100, CJK characters as single pieces)
    gives the ids of BERT's own tokenizer (HF `tokenizers`' BertWordPiece, the reference),
    except on full-width forms, a documented difference (README, "Checkpoints in and out")."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from electra_tf.text.tokenizer import ElectraTokenizer

    root, tokens, _ = zh
    reference = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)},
                                           unk_token="[UNK]", max_input_chars_per_word=100))
    reference.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    reference.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ours = ElectraTokenizer(str(root / "vocab.txt"), lower_case=True)
    texts = ["我们的模型在中文新闻上训练。", "ELECTRA 模型, 好的!", "北京2022年冬奥会",
             "the models 的 testing", "鑫鑫鑫 unknown 《三体》", "  空格\t和\n换行  ",
             "Café 的 NAÏVE 用户、测试"]
    got = ours.tokenize(texts).to_list()
    for text, ids in zip(texts, got):
        assert ids == reference.encode(text, add_special_tokens=False).ids, text
    assert tokens.index("[UNK]") == 100 and ours.unk_id == 100 and ours.cls_id == 101
    # One piece per character ([UNK] for those the vocabulary lacks).
    assert [tokens[i] for i in got[0]] == [c if c in tokens else "[UNK]" for c in texts[0]]
    assert tokens[got[4][0]] == "[UNK]"  # a character outside the vocabulary

    # The known difference: tensorflow-text's lower-casing normaliser (the one that runs in
    # TFLite) also folds full-width forms to ASCII (NFKC), which BERT's does not.
    full_width = "好的，我们！"
    ours_ids = ours.tokenize([full_width]).to_list()[0]
    bert_ids = reference.encode(full_width, add_special_tokens=False).ids
    assert [tokens[i] for i in bert_ids] == ["好", "的", "，", "我", "们", "！"]
    assert [tokens[i] for i in ours_ids] == ["好", "的", ",", "我", "们", "!"]


def test_gdes_and_mlm_models_export_and_gdes_comes_back_untied(tmp_path):
    """A GDES model's discriminator table is the generator's plus its delta (no one variable):
    written so to HuggingFace, and read back (untied) to the same effective weights; an
    `mlm`-objective model (no replaced-token head) is written as an ElectraModel."""
    from safetensors.numpy import load_file

    from electra_tf import model_dir as model_dir_lib
    from electra_tf import model_loading
    from electra_tf.convert import exporter, importer
    from test_export_support import make_model_dir

    gdes = make_model_dir(str(tmp_path / "gdes"), overrides=["model.embedding_sharing=gdes"])
    model = model_loading.load_pretrainer(gdes)
    token = model.discriminator_embeddings.token_embedding
    token.delta.assign(np.random.default_rng(0).normal(0, 0.1, token.delta.shape))
    import tensorflow as tf
    tf.train.Checkpoint(model=model).write(os.path.join(gdes, "ckpt-1"))
    source = token.source.embeddings.numpy()
    effective = source + token.delta.numpy()

    exporter.to_huggingface(gdes, str(tmp_path / "d"), generator_output=str(tmp_path / "g"),
                            log=lambda _: None)
    d = load_file(str(tmp_path / "d" / "model.safetensors"))
    g = load_file(str(tmp_path / "g" / "model.safetensors"))
    np.testing.assert_array_equal(d["electra.embeddings.word_embeddings.weight"], effective)
    np.testing.assert_array_equal(g["electra.embeddings.word_embeddings.weight"], source)
    with pytest.raises(importer.ConversionError, match="--embedding_sharing=untied"):
        importer.convert("huggingface", str(tmp_path / "d"), str(tmp_path / "tied"),
                         generator_input=str(tmp_path / "g"), log=lambda _: None)
    importer.convert("huggingface", str(tmp_path / "d"), str(tmp_path / "back"),
                     generator_input=str(tmp_path / "g"), embedding_sharing="untied",
                     log=lambda _: None)
    back = model_loading.load_pretrainer(str(tmp_path / "back"))
    assert model_dir_lib.read_config(str(tmp_path / "back")).model.embedding_sharing == "untied"
    np.testing.assert_array_equal(
        back.discriminator_embeddings.token_embedding.embeddings.numpy(), effective)
    np.testing.assert_array_equal(
        back.generator_embeddings.token_embedding.embeddings.numpy(), source)
    ids = np.array([[2, 7, 9, 11, 3, 0]], "int32")
    batch = _batch(ids, 0 * ids, (ids > 0).astype("int32"))
    np.testing.assert_allclose(back.discriminator(batch).numpy(),
                               model.discriminator(batch).numpy(), atol=1e-5)

    mlm = make_model_dir(str(tmp_path / "mlm"), overrides=["objective.kind=mlm"])
    exporter.to_huggingface(mlm, str(tmp_path / "mlm_hf"), log=lambda _: None)
    config = json.loads((tmp_path / "mlm_hf" / "config.json").read_text())
    assert config["architectures"] == ["ElectraModel"]
    written = load_file(str(tmp_path / "mlm_hf" / "model.safetensors"))
    assert not [n for n in written if n.startswith("discriminator_predictions")]
    encoder = model_loading.load_discriminator(mlm)
    np.testing.assert_array_equal(written["electra.embeddings.word_embeddings.weight"],
                                  encoder.embeddings.token_embedding.embeddings.numpy())


def test_relative_model_dir_paths_work(converted, tmp_path, monkeypatch):
    """A model dir named by a relative path (TF's checkpoint state already joins relative
    entries; joining again pointed at DIR/DIR/ckpt-0) and one moved elsewhere (its
    `checkpoint` file then names absolute paths that are gone) both load."""
    import shutil

    from electra_tf import model_checkpoints
    from electra_tf import model_loading

    monkeypatch.chdir(tmp_path)
    shutil.copytree(converted["model_dir"], "models/moved")  # absolute entries in the index
    (tmp_path / "models" / "moved" / "checkpoint").write_text(
        'model_checkpoint_path: "/nowhere/ckpt-0"\nall_model_checkpoint_paths: "/nowhere/ckpt-0"\n')
    assert model_checkpoints.checkpoint_candidates("models/moved") == ["models/moved/ckpt-0"]
    shutil.copytree(converted["model_dir"], "models/rel")
    assert model_checkpoints.checkpoint_candidates("models/rel") == ["models/rel/ckpt-0"]
    for name in ("models/rel", "models/moved"):
        logits = model_loading.load_discriminator(name)(_batch(*_inputs(
            converted["sizes"].vocab_size)[:3]))
        assert logits.shape == (3, 12)


def test_head_count_guess_is_said_and_a_base_fraction_matches_the_base_config(tmp_path):
    """Without --config a TF1 conversion says how many heads it assumed; a Base-shaped
    generator (1/3 width) is written as 0.333333, as configs/electra_base.yaml has it."""
    from electra_tf import config as config_lib
    from electra_tf import model_dir as model_dir_lib
    from electra_tf import model_loading
    from electra_tf.convert import importer

    sizes = Sizes(vocab_size=40, embedding_size=24, hidden_size=192, num_layers=1,
                  num_heads=3, intermediate_size=64, gen_hidden_size=64, gen_num_heads=1,
                  gen_intermediate_size=256, gen_num_layers=1, max_position_embeddings=32)
    variables = tf1_variables(sizes, 9)
    prefix = write_tf1_checkpoint(str(tmp_path / "ckpt" / "model.ckpt"), variables)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(35)]
    (tmp_path / "ckpt" / "vocab.txt").write_text("\n".join(tokens) + "\n")
    lines = []
    importer.convert("google_tf1", prefix, str(tmp_path / "out"), log=lines.append)
    assert any("3 attention heads assumed for hidden size 192" in line for line in lines)
    cfg = model_dir_lib.read_config(str(tmp_path / "out"))
    assert cfg.generator.hidden_fraction == 0.333333 and cfg.generator_hidden_size() == 64
    model = model_loading.load_pretrainer(str(tmp_path / "out"))
    ids = np.array([[2, 7, 30, 39, 11, 3], [2, 5, 6, 3, 0, 0]], "int32")
    mask = (ids > 0).astype("int32")
    segments = np.zeros_like(ids)
    ours = model.discriminator(_batch(ids, segments, mask)).numpy()
    reference = numpy_discriminator_logits_tf1(variables, ids, segments, mask, 3)
    assert np.abs(ours - reference)[mask > 0].max() < 1e-4
    # A run that writes the fraction another way (1/3 in full) is the same model: accepted;
    # another width is refused.
    def run_config(fraction):
        data = cfg.to_dict()
        data["generator"]["hidden_fraction"] = fraction
        data["objective"]["max_predictions_per_seq"] = None
        return config_lib.from_dict(data)

    model_dir_lib.prepare_model_dir(str(tmp_path / "out"), run_config(1 / 3), None, write=False)
    with pytest.raises(model_dir_lib.ModelDirError, match="converted model's sizes"):
        model_dir_lib.prepare_model_dir(str(tmp_path / "out"), run_config(0.5), None,
                                        write=False)
