"""The trainer end to end on real TFRecords, next to its isolated step and its input reader.

Three figures from one run, on the same machine load:
  1. reader: `pretraining_reader.pretraining_dataset` alone (parse, shuffle, batch), in
     examples/s: the input pipeline must deliver at least 10x what a step consumes;
  2. binary: `python -m electra_tf.train` on those TFRecords for --train_steps steps, its own
     logged `examples_per_sec` (metrics.jsonl; the first logging interval, which holds the
     tracing, is dropped), its peak resident memory and how much its resident memory grew
     from the end of the second interval to the end of the run;
  3. step: the isolated step of `benchmarks/train_step.py --which=ours` (the same
     `PretrainingStep.train_loop` the trainer runs) at the same config, batch and precision.
Data: the first --megabytes of ../shared/data/en_corpus (else the embedded corpus), a
30,522-piece WordPiece vocabulary learned from it with HF `tokenizers` (fast; its quality is
not what is measured), TFRecords built by `build_pretraining_data`.

Prints ONE JSON line. Usage:
  python benchmarks/train_end_to_end.py [--precision=fp32|bf16] [--train_steps=40]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
SHARED_CORPUS = os.path.join(os.path.dirname(REPO), "shared", "data", "en_corpus")


def _vocab(files, path, size):
    from tokenizers import BertWordPieceTokenizer

    from electra_tf.text.vocab import write_vocab

    trainer = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True,
                                     strip_accents=True, lowercase=True)
    trainer.train(files, vocab_size=size, limit_alphabet=500, show_progress=False,
                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tokens = [t for t, _ in sorted(trainer.get_vocab().items(), key=lambda item: item[1])]
    tokens += [f"[unused{i}]" for i in range(size - len(tokens))]  # the config's exact size
    write_vocab(tokens[:size], path)


def _reader_rate(pattern, batch, seq, batches):
    from electra_tf.data.pretraining_reader import pretraining_dataset

    dataset = pretraining_dataset(pattern, batch, seq, shuffle=True, repeat=True)
    iterator = iter(dataset)
    for _ in range(5):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)["token_ids"].numpy()
    return batches * batch / (time.perf_counter() - start)


def _binary_rate(args, pattern, vocab, model_dir):
    precision = "mixed_bfloat16" if args.precision == "bf16" else "none"
    cmd = [sys.executable, "-m", "electra_tf.train",
           f"--config={os.path.join(REPO, 'configs', args.config)}",
           f"--train_data={pattern}", f"--vocab={vocab}", f"--model_dir={model_dir}",
           f"--train_steps={args.train_steps}",
           f"--override=training.batch_size={args.batch_size}",
           f"--override=data.max_seq_length={args.seq_length}",
           f"--override=training.log_every={args.log_every}",
           f"--override=training.steps_per_loop={args.log_every}",
           f"--override=training.checkpoint_every={args.train_steps}",
           f"--override=training.mixed_precision={precision}"]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"train_end_to_end: the training binary failed: "
                         f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    with open(os.path.join(model_dir, "metrics.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    train = [r for r in records if r.get("split") == "train"][1:]
    memory = [r["memory_gib"] for r in train]
    return {"rate": statistics.median(r["examples_per_sec"] for r in train),
            "mfu": statistics.median(r["mfu"] for r in train), "intervals": len(train),
            "peak_memory_gib": train[-1]["peak_memory_gib"],
            # Resident memory from the end of the second interval to the end of the run.
            "memory_growth_gib": memory[-1] - memory[0]}


def _step_rate(args):
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "train_step.py"), "--which=ours",
           f"--config={os.path.join(REPO, 'configs', args.config)}",
           f"--precision={args.precision}", f"--batch_size={args.batch_size}",
           f"--seq_length={args.seq_length}", "--steps=6", "--rounds=2"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit("train_end_to_end: benchmarks/train_step.py failed: "
                         f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    result = json.loads(lines[-1])
    return result["ours_seq_per_s"], result["ours_mfu"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="electra_small.yaml")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--train_steps", type=int, default=40)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--reader_batches", type=int, default=300)
    args = parser.parse_args()

    from corpus_builder import slice_corpus

    from electra_tf.data.pretraining_builder import build_pretraining_data
    from electra_tf.text.embedded_corpus import embedded_corpus_files

    tmp = tempfile.mkdtemp(prefix="train_end_to_end_")
    if os.path.isdir(SHARED_CORPUS):
        corpus, files = "en_corpus", slice_corpus(SHARED_CORPUS, args.megabytes, tmp)
    else:
        corpus, files = "embedded", embedded_corpus_files(os.path.join(tmp, "embedded"))
    vocab = os.path.join(tmp, "vocab.txt")
    _vocab(files, vocab, 30522)
    sidecar = build_pretraining_data(files, vocab, os.path.join(tmp, "data"),
                                     max_seq_length=args.seq_length, num_shards=4,
                                     num_workers=2)
    pattern = os.path.join(tmp, "data", "pretrain-*")

    reader = _reader_rate(pattern, args.batch_size, args.seq_length, args.reader_batches)
    run = _binary_rate(args, pattern, vocab, os.path.join(tmp, "run"))
    binary = run["rate"]
    step, step_mfu = _step_rate(args)
    print(json.dumps({
        "benchmark": "train_end_to_end", "config": args.config, "precision": args.precision,
        "batch_size": args.batch_size, "seq_length": args.seq_length, "corpus": corpus,
        "examples": sidecar["examples"], "train_steps": args.train_steps,
        "reader_examples_per_s": round(reader, 1),
        "binary_examples_per_s": round(binary, 2), "binary_mfu": round(run["mfu"], 4),
        "binary_intervals": run["intervals"],
        "binary_peak_memory_gib": round(run["peak_memory_gib"], 3),
        "binary_memory_growth_gib": round(run["memory_growth_gib"], 3),
        "step_seq_per_s": round(step, 2), "step_mfu": round(step_mfu, 4),
        "reader_over_step": round(reader / step, 1),
        "binary_over_step": round(binary / step, 3),
    }))


if __name__ == "__main__":
    main()
