"""Times ELECTRA pretraining steps: ours vs Model Garden's ElectraPretrainer, same batch.

Prints ONE JSON line: sequences/s of each, their ratio, and model-FLOPs utilisation against a
matmul peak measured inside each worker around its timed steps (same machine load). Model
FLOPs per sequence come from `electra_tf.training.flops.model_flops_per_sequence`
(6 x non-embedding params x tokens + 12 x layers x seq^2 x hidden, generator and
discriminator); both networks have the same architecture, so the same count serves both.

OURS is the trainer's own step, `electra_tf.training.step.PretrainingStep.train_loop` (the
function `trainer.train` runs): masking and sampling inside the step, the loss divided over
replicas, dense gradients (optionally XLA-compiled), the cross-replica sum before global-norm
clipping and the reference AdamW from `create_optimizer`, reading batches from a tf.data
iterator. MODEL GARDEN is
`official.nlp.modeling.models.ElectraPretrainer` with two `BertEncoder`s of the same sizes
(tied embeddings, as its ELECTRA task does), its ELECTRA losses and its `AdamWeightDecay`
(clip 1.0). It is tf_keras based, so it runs in a subprocess with TF_USE_LEGACY_KERAS=1; its
masked positions come from the input pipeline in Model Garden, so they are drawn once here,
outside the timed step (which favours it slightly). Ours runs in a subprocess too, so both
start equal; rounds alternate between them and the median step time of each is reported,
because the machine is shared and timings are noisy.

Usage:
  python benchmarks/train_step.py --precision=fp32 --batch_size=32
  python benchmarks/train_step.py --precision=bf16 --mg_precision=fp32
  git worktree add /tmp/before <commit>   # then, to time that commit's step alongside:
  python benchmarks/train_step.py --baseline_repo=/tmp/before

Data: random token ids (uniform over the vocabulary, no padding); throughput does not depend
on the text.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("config", os.path.join(REPO_ROOT, "configs", "electra_small.yaml"),
                    "ELECTRA config YAML (model sizes).")
flags.DEFINE_integer("batch_size", 32, "Sequences per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per sequence.")
flags.DEFINE_enum("precision", "fp32", ["fp32", "bf16"], "Precision of OURS (and of MG "
                  "unless --mg_precision is given): fp32 or mixed_bfloat16.")
flags.DEFINE_enum("mg_precision", None, ["fp32", "bf16"], "Precision of Model Garden.")
flags.DEFINE_integer("steps", 8, "Timed steps per round.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps per round after building.")
flags.DEFINE_integer("rounds", 2, "Alternating rounds (each network once per round).")
flags.DEFINE_enum("which", "both", ["both", "ours", "mg"], "Which networks to time.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile OURS' forward+backward.")
flags.DEFINE_integer("intra_threads", 0, "tf.config intra-op threads (0: TF default).")
flags.DEFINE_integer("inter_threads", 0, "tf.config inter-op threads (0: TF default).")
flags.DEFINE_bool("accelerator", False, "Run on the GPU/TPU TensorFlow finds (default: the "
                  "CPU, with GPUs hidden). benchmarks/accelerator.sh sets it.")
flags.DEFINE_integer("peak_matmul_size", 2048, "Side of the matmuls that measure the peak "
                     "(2048 saturates a CPU; an accelerator needs 8192).")
flags.DEFINE_string("baseline_repo", None, "A checkout of an earlier electra_tf (e.g. `git "
                    "worktree add /tmp/before <commit>`): its own step is timed as a third "
                    "network, 'before', alternating with the others in the same run.")
flags.DEFINE_enum("worker", None, ["ours", "mg"], "Internal: run one timing worker.")


class BenchmarkError(ValueError):
    """Bad flags or a failed worker (one-line message)."""


def _set_threads():
    import tensorflow as tf
    if FLAGS.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_threads)
    if FLAGS.inter_threads:
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_threads)


def _load_config():
    sys.path.insert(0, REPO_ROOT)
    from electra_tf.config import load_config
    return load_config(FLAGS.config, [f"data.max_seq_length={FLAGS.seq_length}",
                                      f"training.batch_size={FLAGS.batch_size}"])


def _random_batch(cfg, np_module):
    rng = np_module.random.RandomState(0)
    b, s = FLAGS.batch_size, FLAGS.seq_length
    ids = rng.randint(5, cfg.model.vocab_size, size=(b, s)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    segments = np_module.zeros((b, s), "int32")
    segments[:, s // 2:] = 1
    return ids, segments, np_module.ones((b, s), "int32")


def _time_steps(step, *args, precision="fp32"):
    """Warm-up steps, then per-step wall times of `steps` steps (each waits for its result).

    The matmul peak is measured in this process right before and after the timed steps, so
    that it sees the same machine load as the steps (the machine is shared).
    """
    import numpy as np
    sys.path.insert(0, REPO_ROOT)
    from electra_tf.training.flops import measure_matmul_peak
    from electra_tf.training.host_memory import peak_resident_gib, resident_gib
    dtype = "bfloat16" if precision == "bf16" else "float32"
    for _ in range(FLAGS.warmup_steps):
        np.asarray(step(*args))
    peaks = [measure_matmul_peak(dtype, size=FLAGS.peak_matmul_size, seconds=2.0)]
    times, resident = [], [resident_gib()]
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        np.asarray(step(*args))
        times.append(time.perf_counter() - start)
        resident.append(resident_gib())
    peak_rss = peak_resident_gib()  # before the second peak measurement adds its own
    peaks.append(measure_matmul_peak(dtype, size=FLAGS.peak_matmul_size, seconds=2.0))
    return {"times": times, "peak_flops": float(np.mean(peaks)), "peak_rss_gib": peak_rss,
            "rss_first_gib": resident[1], "rss_last_gib": resident[-1]}


def worker_ours():
    """Times the trainer's own step: `PretrainingStep.train_loop`, one step per call."""
    import numpy as np
    import tensorflow as tf
    _set_threads()
    cfg = _load_config()
    from electra_tf.training import precision, step as step_lib
    precision.configure_precision("mixed_bfloat16" if FLAGS.precision == "bf16" else "none")
    cfg.training.jit_compile = FLAGS.jit_compile
    strategy = tf.distribute.get_strategy()
    # A synthetic vocabulary of the config's size (specials first): speed depends on shapes.
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"w{i}" for i in range(cfg.model.vocab_size - len(tokens))]
    state = step_lib.create_train_state(cfg, tokens, strategy)
    layout = step_lib.BatchLayout.plan(global_batch=FLAGS.batch_size, num_replicas=1,
                                       num_local_replicas=1)
    pretraining_step = step_lib.PretrainingStep(
        state["model"], state["optimizer"], strategy, layout, step=state["step"],
        rng=tf.random.Generator.from_seed(0), accumulator=state["accumulator"],
        jit_compile=FLAGS.jit_compile)
    ids, segments, mask = _random_batch(cfg, np)
    batch = {"token_ids": tf.constant(ids), "segment_ids": tf.constant(segments),
             "padding_mask": tf.constant(mask)}
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    one = tf.constant(1, tf.int32)

    def step(iterator, num_steps):
        totals, _ = pretraining_step.train_loop(iterator, num_steps)
        return totals

    start = time.perf_counter()
    np.asarray(step(iterator, one))
    build_s = time.perf_counter() - start
    result = _time_steps(step, iterator, one, precision=FLAGS.precision)
    params = int(sum(np.prod(v.shape) for v in state["model"].trainable_variables))
    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
              if gpus else "CPU")
    return dict(result, first_step_s=build_s, params=params, device=device)


def worker_mg():
    """Times Model Garden's ElectraPretrainer + ELECTRA losses + its AdamWeightDecay."""
    import numpy as np
    import tensorflow as tf
    import tf_keras
    _set_threads()
    cfg = _load_config()
    from official.modeling.optimization.legacy_adamw import AdamWeightDecay
    from official.nlp.modeling import models, networks
    precision = FLAGS.mg_precision or FLAGS.precision
    if precision == "bf16":
        tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
    m = cfg.model
    init = tf_keras.initializers.TruncatedNormal(stddev=m.initializer_range)
    gelu = lambda x: tf_keras.activations.gelu(x, approximate=False)  # exact, as ours
    gh = cfg.generator_hidden_size()
    generator = networks.BertEncoder(
        vocab_size=m.vocab_size, hidden_size=gh, num_layers=cfg.generator_num_layers(),
        num_attention_heads=cfg.generator_num_heads(),
        max_sequence_length=m.max_position_embeddings, type_vocab_size=m.type_vocab_size,
        inner_dim=cfg.generator_intermediate_size(), inner_activation=gelu,
        output_dropout=m.hidden_dropout, attention_dropout=m.attention_dropout,
        initializer=init, embedding_width=m.embedding_size, dict_outputs=True)
    discriminator = networks.BertEncoder(
        vocab_size=m.vocab_size, hidden_size=m.hidden_size, num_layers=m.num_layers,
        num_attention_heads=m.num_heads, max_sequence_length=m.max_position_embeddings,
        type_vocab_size=m.type_vocab_size, inner_dim=m.intermediate_size,
        inner_activation=gelu, output_dropout=m.hidden_dropout,
        attention_dropout=m.attention_dropout, initializer=init,
        embedding_width=m.embedding_size,
        embedding_layer=generator.get_embedding_layer(),  # tie_embeddings, as MG's task
        dict_outputs=True)
    n = cfg.objective.max_predictions_per_seq
    model = models.ElectraPretrainer(
        generator_network=generator, discriminator_network=discriminator,
        vocab_size=m.vocab_size, num_classes=2, num_token_predictions=n,
        mlm_activation=gelu, mlm_initializer=init)
    optimizer = AdamWeightDecay(learning_rate=1e-4, weight_decay_rate=cfg.optimizer.weight_decay,
                                epsilon=cfg.optimizer.epsilon, gradient_clip_norm=1.0,
                                exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
    ids, segments, mask = _random_batch(cfg, np)
    rng = np.random.RandomState(1)
    positions = np.stack([np.sort(rng.choice(np.arange(1, FLAGS.seq_length - 1), n, False))
                          for _ in range(FLAGS.batch_size)]).astype("int32")
    masked_ids = np.take_along_axis(ids, positions, 1)
    masked_input = ids.copy()
    np.put_along_axis(masked_input, positions, 4, 1)
    inputs = {"input_word_ids": tf.constant(masked_input), "input_mask": tf.constant(mask),
              "input_type_ids": tf.constant(segments),
              "masked_lm_positions": tf.constant(positions),
              "masked_lm_ids": tf.constant(masked_ids),
              "masked_lm_weights": tf.ones([FLAGS.batch_size, n], tf.float32)}
    model(inputs)  # build
    disc_weight = cfg.objective.disc_weight

    @tf.function
    def step(inputs):
        # The losses of official/nlp/tasks/electra_task.py `build_losses`.
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            lm = tf_keras.losses.sparse_categorical_crossentropy(
                inputs["masked_lm_ids"], tf.cast(out["lm_outputs"], tf.float32),
                from_logits=True)
            w = inputs["masked_lm_weights"]
            mlm_loss = tf.math.divide_no_nan(tf.reduce_sum(lm * w), tf.reduce_sum(w))
            rtd = tf.nn.sigmoid_cross_entropy_with_logits(
                logits=tf.cast(out["disc_logits"], tf.float32),
                labels=tf.cast(out["disc_label"], tf.float32))
            im = tf.cast(inputs["input_mask"], tf.float32)
            loss = mlm_loss + disc_weight * tf.math.divide_no_nan(tf.reduce_sum(im * rtd),
                                                                  tf.reduce_sum(im))
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss

    start = time.perf_counter()
    np.asarray(step(inputs))
    build_s = time.perf_counter() - start
    result = _time_steps(step, inputs, precision=precision)
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return dict(result, first_step_s=build_s, params=params)


def _run_worker(which: str, argv) -> dict:
    repo, script, worker = REPO_ROOT, os.path.abspath(__file__), which
    if which == "before":  # the baseline checkout's own benchmark and step
        repo = os.path.abspath(FLAGS.baseline_repo)
        script, worker = os.path.join(repo, "benchmarks", "train_step.py"), "ours"
        # Its own flags only: absl accepts one or two dashes, and "--flag value" as two words.
        kept, skip = [], False
        for a in argv:
            if skip:
                skip = False
                continue
            name = a.lstrip("-")
            if a.startswith("-") and name.split("=")[0] == "baseline_repo":
                skip = "=" not in name
                continue
            kept.append(a)
        argv = kept
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=repo)
    if not FLAGS.accelerator:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU figures: never a GPU by accident
    if which == "mg":
        env["TF_USE_LEGACY_KERAS"] = "1"
    cmd = [sys.executable, script, f"--worker={worker}"] + argv[1:]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        errors = proc.stderr.strip().splitlines() or ["no output"]
        # absl ends a flag error with a "--helpshort" hint; the error is the line before.
        flag_errors = [l for l in errors if "Unknown command line flag" in l
                       or "Flags parsing error" in l]
        tail = flag_errors[-1] if flag_errors else errors[-1]
        if which == "before" and flag_errors:
            tail += " (the baseline checkout predates a flag given here; leave it out)"
        raise BenchmarkError(f"the {which} worker failed (exit {proc.returncode}): {tail}")
    result = json.loads(lines[-1])
    missing = [k for k in _WORKER_KEYS if k not in result]
    if missing:
        raise BenchmarkError(f"the {which} worker's result lacks {', '.join(missing)} (a "
                             "baseline checkout older than this benchmark's memory figures?)")
    return result


# What each worker reports (a --baseline_repo checkout must be recent enough to report them).
_WORKER_KEYS = ("times", "peak_flops", "peak_rss_gib", "rss_first_gib", "rss_last_gib",
                "first_step_s", "params")


def main(argv):
    if FLAGS.worker:
        result = worker_ours() if FLAGS.worker == "ours" else worker_mg()
        print(json.dumps(result))
        return
    if FLAGS.steps < 1 or FLAGS.rounds < 1 or FLAGS.batch_size < 1:
        raise BenchmarkError("--steps, --rounds and --batch_size must be >= 1")
    cfg = _load_config()
    from electra_tf.training import flops as flops_lib
    mg_precision = FLAGS.mg_precision or FLAGS.precision
    which = ["ours", "mg"] if FLAGS.which == "both" else [FLAGS.which]
    if FLAGS.baseline_repo:
        if not os.path.isfile(os.path.join(FLAGS.baseline_repo, "benchmarks", "train_step.py")):
            raise BenchmarkError(f"--baseline_repo={FLAGS.baseline_repo}: no "
                                 "benchmarks/train_step.py there; give a checkout of electra_tf")
        which.insert(1, "before")
    runs = {w: [] for w in which}
    for r in range(FLAGS.rounds):
        order = which if r % 2 == 0 else which[::-1]
        for w in order:
            runs[w].append(_run_worker(w, sys.argv))
            print(f"round {r} {w}: median step {statistics.median(runs[w][-1]['times']):.3f} s",
                  file=sys.stderr, flush=True)
    flops = flops_lib.model_flops_per_sequence(cfg)
    result = {"benchmark": "train_step", "config": os.path.basename(FLAGS.config),
              "batch_size": FLAGS.batch_size, "seq_length": FLAGS.seq_length,
              "precision": FLAGS.precision, "mg_precision": mg_precision,
              "jit_compile": FLAGS.jit_compile, "intra_threads": FLAGS.intra_threads,
              "inter_threads": FLAGS.inter_threads, "model_flops_per_seq": flops}
    for w in which:
        times = [t for run in runs[w] for t in run["times"]]
        median = statistics.median(times)
        seq_s = FLAGS.batch_size / median
        precision = mg_precision if w == "mg" else FLAGS.precision
        # MFU per round against the peak measured in that worker, then the median.
        mfus = [flops * FLAGS.batch_size / statistics.median(r["times"]) / r["peak_flops"]
                for r in runs[w]]
        result[f"{w}_seq_per_s"] = round(seq_s, 3)
        result[f"{w}_step_s_median"] = round(median, 4)
        result[f"{w}_step_s_min"] = round(min(times), 4)
        result[f"{w}_mfu"] = round(statistics.median(mfus), 4)
        result[f"{w}_matmul_peak_tflops_{precision}"] = round(statistics.median(
            r["peak_flops"] for r in runs[w]) / 1e12, 4)
        result[f"{w}_first_step_s"] = round(statistics.median(
            r["first_step_s"] for r in runs[w]), 1)
        result[f"{w}_params"] = runs[w][0]["params"]
        result[f"{w}_peak_rss_gib"] = round(max(r["peak_rss_gib"] for r in runs[w]), 3)
        # Growth across the timed steps of a round (first step's resident memory to the
        # last's): a leak would show here.
        result[f"{w}_rss_growth_gib"] = round(max(
            r["rss_last_gib"] - r["rss_first_gib"] for r in runs[w]), 3)
        if "device" in runs[w][0]:
            result[f"{w}_device"] = runs[w][0]["device"]
    if "mg" in which and "ours" in which:
        result["ratio_ours_over_mg"] = round(result["ours_seq_per_s"] / result["mg_seq_per_s"], 3)
    if "before" in which:
        result["baseline_repo"] = FLAGS.baseline_repo
        if "ours" in which:
            result["ratio_ours_over_before"] = round(
                result["ours_seq_per_s"] / result["before_seq_per_s"], 3)
        if "mg" in which:
            result["ratio_before_over_mg"] = round(
                result["before_seq_per_s"] / result["mg_seq_per_s"], 3)
    print(json.dumps(result))


def _entry():
    sys.path.insert(0, REPO_ROOT)
    from electra_tf.config import ConfigError

    try:
        app.run(main)
    except (BenchmarkError, ConfigError) as e:  # one clear line, no traceback
        print(f"train_step: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _entry()
