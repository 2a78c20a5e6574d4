"""Inference benchmark of the exports: size, latency and throughput on this CPU.

ELECTRA-Small's discriminator shape (configs/electra_small.yaml, vocab 30522, seq 128) with
RANDOM weights (no training needed to time it; agreement figures are against the Keras model
with the same random weights). Exports a SavedModel and the id-input TFLite variants with the
project's own exporter, then measures, with the same thread count for every runtime
(TF intra/inter-op threads and TFLite `num_threads`):
  size on disk, p50/p90 latency at batch 1, examples/s at batch 32,
and prints ONE JSON line. Targets (export issue): dynamic-range int8 TFLite >= 2x faster than
the SavedModel at batch 1, <= 30% of its size, discriminator AUC within 0.01 of Keras.

How it times (the machine is shared, so load from other processes comes and goes):
  - the runtimes are timed INTERLEAVED, round-robin (the starting runtime rotates each
    round), so a burst of outside load hits every runtime alike instead of whichever one
    happened to be running; figures are medians/percentiles over rounds;
  - every input is built once outside the timed calls (tf.constant for TF, int32 arrays for
    TFLite) and each TFLite signature runner is fetched once; batch 1 is timed in one phase
    and batch 32 in the next, so a TFLite input is resized (resize + allocate_tensors) only
    in the warm-up of each phase, never inside the timed calls;
  - the load average before and after is reported, and per TFLite variant the number of
    XNNPACK delegate partitions (`xnnpack_partitions`): a high-load run or a variant whose
    graph falls apart into many partitions reads differently.

    .venv/bin/python benchmarks/inference.py [--threads=N] [--runs=50]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dir_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _timeit_interleaved(fns, runs, warmup=3):
    """Seconds per call of each of `fns` ({name: fn}), timed round-robin.

    Each round calls every function once, starting one further along each round, so load
    from other processes (the CPUs are shared) is spread over all runtimes alike.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for r in range(runs):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=50,
                        help="batch-1 timed rounds (one call of every runtime each)")
    parser.add_argument("--batch_runs", type=int, default=5, help="batch-32 timed rounds")
    parser.add_argument("--num_examples", type=int, default=32)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from electra_tf import config as config_lib
    from electra_tf.export import pipeline, serving, tflite
    from electra_tf.export.calibration import load_calibration_data
    from electra_tf.export.source import ExportSource
    from electra_tf.text.tokenizer import ElectraTokenizer
    from electra_tf.model_loading import build_pretrainer

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = config_lib.load_config(os.path.join(repo, "configs", "electra_small.yaml"))
    seq = cfg.data.max_seq_length
    # A synthetic vocabulary of the real size: the timing depends on shapes, not on words.
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"w{i}" for i in range(cfg.model.vocab_size - len(tokens))]
    tokenizer = ElectraTokenizer(tokens)
    model = build_pretrainer(cfg, tokens).discriminator
    source = ExportSource(model=model, tokenizer=tokenizer, max_seq_length=seq,
                          max_position_embeddings=cfg.model.max_position_embeddings)
    # Sentences of the synthetic vocabulary's words, 20-120 words each (held-out ones are
    # corrupted by the exporter for the true-label AUC).
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(tokens[5:], size=int(rng.integers(20, 120))))
             for _ in range(2 * args.num_examples)]
    calibration = load_calibration_data(tokenizer, seq, texts=texts,
                                        num_examples=args.num_examples)

    work = tempfile.mkdtemp(prefix="electra_bench_")
    try:
        started = time.time()
        report = pipeline.export_all(source, work, formats="all", styles="ids",
                                     calibration=calibration, strict=False,
                                     log=lambda line: print(line, file=sys.stderr))
        export_seconds = time.time() - started
        weights = os.path.join(work, "discriminator.weights.h5")
        model.save_weights(weights)

        rng = np.random.default_rng(0)

        def batch(n):
            ids = rng.integers(5, cfg.model.vocab_size, size=(n, seq)).astype(np.int32)
            ids[:, 0], ids[:, -1] = tokenizer.cls_id, tokenizer.sep_id
            return {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                    "padding_mask": np.ones_like(ids)}

        one, many = batch(1), batch(32)
        load_before = os.getloadavg()
        keras_fn = serving.make_ids_function(model, "replaced_token")
        loaded = tf.saved_model.load(report["paths"]["saved_model"])
        signature = loaded.signatures["serve_ids"]
        # Inputs built once per batch size, outside the timed calls, for every runtime.
        tf_inputs = {n: {k: tf.constant(v) for k, v in b.items()} for n, b in
                     ((1, one), (32, many))}
        np_inputs = {1: one, 32: many}
        runners = {
            "keras": (lambda n: keras_fn(**tf_inputs[n]), _dir_bytes(weights)),
            "saved_model": (lambda n: signature(**tf_inputs[n]),
                            _dir_bytes(report["paths"]["saved_model"])),
        }
        variants = report["tflite"]["variants"]
        partitions = {}
        for key, m in variants.items():
            path = os.path.join(report["paths"]["tflite"], m["file"])
            interpreter = tflite.load_interpreter(path, num_threads=args.threads)
            runner = interpreter.get_signature_runner(tflite.SIGNATURE["ids"])
            runners[f"tflite_{key}"] = (lambda n, r=runner: r(**np_inputs[n]), _dir_bytes(path))
            runner(**one)  # applies the delegate; then count its partitions
            partitions[key] = sum(op["op_name"] == "DELEGATE"
                                  for op in interpreter._get_ops_details())  # pylint: disable=protected-access

        latency = _timeit_interleaved(
            {name: (lambda fn=fn: fn(1)) for name, (fn, _) in runners.items()}, args.runs)
        throughput = _timeit_interleaved(
            {name: (lambda fn=fn: fn(32)) for name, (fn, _) in runners.items()},
            args.batch_runs, warmup=1)
        results = {}
        for name, (_, size) in runners.items():
            lat = np.asarray(latency[name]) * 1000
            results[name] = {"bytes": int(size), "p50_ms_batch1": round(float(np.percentile(lat, 50)), 2),
                             "p90_ms_batch1": round(float(np.percentile(lat, 90)), 2),
                             "examples_per_s_batch32": round(32 / float(np.median(throughput[name])), 1)}
            if name.startswith("tflite_"):
                m = variants[name[len("tflite_"):]]
                results[name]["xnnpack_partitions"] = partitions[name[len("tflite_"):]]
                results[name].update({k: (None if isinstance(m[k], float) and np.isnan(m[k])
                                          else round(m[k], 5)) for k in (
                    "max_abs_logit_diff", "agreement_auc", "disc_auc", "keras_disc_auc",
                    "disc_auc_delta")})
        sm, dyn = results["saved_model"], results["tflite_ids_dynamic_int8"]
        targets = {
            "dynamic_speedup_vs_saved_model_batch1": round(sm["p50_ms_batch1"] / dyn["p50_ms_batch1"], 2),
            "dynamic_size_fraction_of_saved_model": round(dyn["bytes"] / sm["bytes"], 3),
            "dynamic_disc_auc_delta": dyn["disc_auc_delta"],
        }
        targets["met"] = bool(targets["dynamic_speedup_vs_saved_model_batch1"] >= 2.0
                              and targets["dynamic_size_fraction_of_saved_model"] <= 0.30
                              and (dyn["disc_auc_delta"] or 0.0) <= 0.01)
        print(json.dumps({
            "benchmark": "inference", "model": "electra_small discriminator (random weights)",
            "seq_length": seq, "threads": args.threads, "cpu_count": os.cpu_count(),
            "data_source": calibration.source, "export_seconds": round(export_seconds, 1),
            "timing": "interleaved round-robin",
            "load_average_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "results": results, "targets": targets}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
