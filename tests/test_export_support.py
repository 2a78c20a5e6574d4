"""Shared helpers of the export tests (no tests here): a tiny trained-run model dir, a tiny
fine-tuned model dir, tiny pretraining TFRecords, and a fresh Python process that cannot
import electra_tf or keras."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

WORDS = ("the quick brown fox jumps over lazy dog cat sat on mat and ran away from big red "
         "house a is it this that small green tree river stone light").split()
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a cat sat on the mat",
    "the big red house is small",
    "it ran away from the green tree",
    "this river stone is light",
    "that dog sat on a stone",
    "the small cat jumps over the river",
    "a lazy fox ran from the house",
] * 4

# Tiny sizes (STYLE: hidden 16-64, 1-2 layers); the rest comes from configs/electra_tiny.yaml.
TINY_OVERRIDES = ["model.hidden_size=32", "model.embedding_size=16", "model.num_heads=2",
                  "model.intermediate_size=64", "model.num_layers=2",
                  "model.max_position_embeddings=64", "data.max_seq_length=24"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vocab_tokens(extra=()):
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *extra, "##s", "##ed",
              *letters, *("##" + c for c in letters), ".", ","]
    return list(dict.fromkeys(tokens))


def make_model_dir(path, tokens=None, overrides=()):
    """A model dir as `electra_tf.train` leaves it: config.yaml, vocab.txt, ckpt-1.

    Built with the trainer's own `prepare_model_dir` and `TrainCheckpoint`; the weights are
    the random initialisation, perturbed so that some tokens score above 0.5.
    """
    from electra_tf import config as config_lib
    from electra_tf.text.vocab import write_vocab
    from electra_tf.training.checkpointing import TrainCheckpoint
    from electra_tf.model_dir import prepare_model_dir
    from electra_tf.model_loading import build_pretrainer

    os.makedirs(path, exist_ok=True)
    tokens = tokens or vocab_tokens()
    vocab_path = os.path.join(os.path.dirname(path), os.path.basename(path) + "_vocab.txt")
    write_vocab(tokens, vocab_path)
    cfg = config_lib.load_config(os.path.join(REPO, "configs", "electra_tiny.yaml"),
                                 TINY_OVERRIDES + list(overrides))
    cfg, tokens = prepare_model_dir(path, cfg, vocab_path)
    import keras
    # The same initial weights whatever ran before in this process: the quantized variants'
    # agreement floors are checked on exactly these weights.
    keras.utils.set_random_seed(0)
    pretrainer = build_pretrainer(cfg, tokens)
    rng = np.random.default_rng(0)
    for v in pretrainer.discriminator.weights:
        if v.path.endswith("bias") and "prediction" in v.path:
            v.assign(rng.normal(0.0, 1.0, v.shape).astype("float32"))
    TrainCheckpoint(path, max_to_keep=1, model=pretrainer).save(1)
    return path


def make_finetuned_dir(path, kind, labels, *, tokens=None, max_seq_length=20,
                       input_sensitive=False, seed=0):
    """A model dir as `electra_tf.finetune` leaves it: config.yaml, vocab.txt, ckpt-N of
    `tf.train.Checkpoint(model=task model)`, and finetune.json.

    An untrained tiny encoder gives almost the same [CLS] vector for every input, so every
    text would get the same class. `input_sensitive` scales the attention kernels up (the
    [CLS] vector then depends on the other tokens) and centres the head on SENTENCES, so
    predictions differ between texts as a trained model's do.
    """
    import keras
    import tensorflow as tf

    from electra_tf import config as config_lib
    from electra_tf.modeling.task_models import build_task_model
    from electra_tf.text.tokenizer import ElectraTokenizer
    from electra_tf.text.vocab import write_vocab

    os.makedirs(path, exist_ok=True)
    tokens = tokens or vocab_tokens()
    write_vocab(tokens, os.path.join(path, "vocab.txt"))
    cfg = config_lib.load_config(os.path.join(REPO, "configs", "electra_tiny.yaml"),
                                 TINY_OVERRIDES)
    cfg.model.vocab_size = len(tokens)
    config_lib.save_config(cfg, os.path.join(path, "config.yaml"))
    keras.utils.set_random_seed(seed)  # the encoder's initialisation too: floors are met per seed
    model = build_task_model(cfg, kind, max(1, len(labels)))
    rng = np.random.default_rng(seed)
    kernel, bias = model.head.weights
    if input_sensitive:
        for v in model.encoder.weights:
            if v.path.endswith("kernel") and any(
                    f"/{n}/" in v.path for n in ("query", "key", "value", "attention_output")):
                v.assign(v.numpy() * 10.0)
        probe = ElectraTokenizer(tokens).encode(sorted(set(SENTENCES)),
                                                max_seq_length=max_seq_length)
        hidden = model.encoder(probe).numpy()
        features = hidden[probe["padding_mask"].numpy() > 0] if kind == "tagging" else \
            hidden[:, 0, :]
        weights = rng.normal(0.0, 1.0, kernel.shape) / (
            features.std(0).mean() * np.sqrt(kernel.shape[0]))
        kernel.assign(weights.astype("float32"))
        bias.assign((-(features @ weights).mean(0)).astype("float32"))
    else:
        kernel.assign(rng.normal(0.0, 0.5, kernel.shape).astype("float32"))
        bias.assign(rng.normal(0.0, 1.0, bias.shape).astype("float32"))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), path, max_to_keep=1,
                               checkpoint_name="ckpt").save(checkpoint_number=1)
    info = {"task": {"classification": "sst2", "regression": "stsb", "tagging": "ner"}[kind],
            "kind": kind, "labels": list(labels), "max_seq_length": max_seq_length}
    with open(os.path.join(path, "finetune.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, ensure_ascii=False)
    return path


def make_tfrecords(directory, tokenizer, max_seq_length, texts=SENTENCES):
    """Pretraining shards in the reference schema plus their dataset.json sidecar."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    enc = tokenizer.encode(texts, max_seq_length=max_seq_length)
    shard = "pretrain-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(os.path.join(directory, shard)) as writer:
        for i in range(len(texts)):
            feature = {
                name: tf.train.Feature(int64_list=tf.train.Int64List(
                    value=enc[key][i].numpy().astype(np.int64).tolist()))
                for name, key in (("input_ids", "token_ids"), ("input_mask", "padding_mask"),
                                  ("segment_ids", "segment_ids"))}
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    sidecar = {"vocab_hash": tokenizer.vocab_hash, "vocab_size": tokenizer.vocab_size,
               "lower_case": True, "max_seq_length": max_seq_length, "documents": len(texts),
               "examples": len(texts), "tokens": int(enc["padding_mask"].numpy().sum()),
               "padding_fraction": 0.5, "num_shards": 1, "compression": "", "seed": 0,
               "shards": [shard]}
    with open(os.path.join(directory, "dataset.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    return os.path.join(directory, "pretrain-*.tfrecord")


# The fresh process imports tensorflow and tensorflow_text (TensorFlow itself loads parts of
# keras at import time), then any further import of electra_tf, keras or keras_hub fails:
# loading and calling the export must not need them.
_BLOCKER = """
import sys, importlib.abc
import tensorflow, tensorflow_text
_KERAS_AT_START = {m for m in sys.modules if m.split(".")[0] == "keras"}
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("electra_tf", "keras", "keras_hub"):
            raise ImportError("blocked in the serving check: " + name)
        return None
sys.meta_path.insert(0, _Block())
"""


def run_cli(*args, timeout=300):
    """Runs `python -m electra_tf.export ARGS` from the repository on CPU."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "electra_tf.export", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def run_fresh_python(script, cwd, timeout=240):
    """Runs `script` in a new interpreter (-I: no PYTHONPATH, no cwd on sys.path) where
    electra_tf, keras and keras_hub cannot be imported; returns its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = ""
    code = _BLOCKER + textwrap.dedent(script) + textwrap.dedent("""
        assert "electra_tf" not in sys.modules, "the export imported electra_tf"
        _new = {m for m in sys.modules if m.split(".")[0] in ("keras", "keras_hub")}
        assert _new <= _KERAS_AT_START, "the export imported " + str(sorted(_new - _KERAS_AT_START))
        """)
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
