"""Corpus builder throughput: the local executor vs the Apache Beam executor, same units.

Both build the same text into the same set of examples (the test suite checks it; here the
corpus-level counts are compared): `build_pretraining_data` with --workers local worker
processes, and `build_pretraining_data_beam` on Beam's DirectRunner with
`--direct_num_workers=W --direct_running_mode=multi_processing`, one TensorFlow thread per
worker process in both. Each is timed end to end (start-up of its processes, reading,
tokenizing, packing, serializing, writing shards and sidecar; for Beam also the framing of
the records, their shuffle into shards through the runner and a count of each shard):
`*_tokens_per_s` (wall clock) and `*_tokens_per_cpu_s` (tokens per CPU second of the
driver and its worker processes, start-up included: what a cluster bills, and what the
machine's other load changes least). `unit_encoder_tokens_per_cpu_s` is the per-unit code
alone (`UnitEncoder.encode` in this process, one thread, on --encoder_megabytes of the
units): the per-core ceiling of both executors.

With --repeats=N each executor builds N times (interleaved) and its fastest build counts.

Text: the first --megabytes of ../shared/data/en_corpus when present, else the embedded
corpus. Files are cut into units of --split_bytes so that the workers have units to share.
Prints ONE JSON line.

Usage: python benchmarks/corpus_builder_beam.py [--megabytes=64] [--workers=2]
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus_builder import SHARED_CORPUS, learn_vocab, slice_corpus  # noqa: E402

# Sidecar fields that must agree between the two executors.
SAME_FIELDS = ("documents", "lines", "examples", "tokens", "text_tokens", "units",
               "single_segment_examples", "short_target_examples")


def _cpu_seconds():
    """CPU seconds of this process and of its finished (waited-for) child processes."""
    self, children = (resource.getrusage(who) for who in
                      (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return self.ru_utime + self.ru_stime + children.ru_utime + children.ru_stime


def _timed(build, out):
    """(sidecar, wall seconds, CPU seconds) of one build."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    sidecar = build(out)
    return sidecar, time.perf_counter() - wall, _cpu_seconds() - cpu


def _builders(files, vocab_path, args):
    """name -> function(output_dir) -> sidecar."""
    from electra_tf.data.beam_pipeline import build_pretraining_data_beam
    from electra_tf.data.pretraining_builder import build_pretraining_data

    common = dict(max_seq_length=args.max_seq_length, num_shards=args.num_shards,
                  split_bytes=args.split_bytes)
    options = [f"--direct_num_workers={args.workers}",
               "--direct_running_mode=multi_processing"]
    return {
        "local": lambda out: build_pretraining_data(files, vocab_path, out,
                                                    num_workers=args.workers, **common),
        "beam": lambda out: build_pretraining_data_beam(files, vocab_path, out,
                                                        beam_options=options, **common),
    }


def _encoder_throughput(files, vocab_path, args):
    """Tokens per CPU second of `UnitEncoder.encode` alone, on the first units."""
    import collections

    from electra_tf.data import build_plan
    from electra_tf.data.unit_encoder import UnitEncoder, electra_tokenizer_factory
    from electra_tf.text.vocab import load_vocab

    tokens = load_vocab(vocab_path)
    build = build_plan.describe_build(
        tokens, files, max_seq_length=args.max_seq_length, num_shards=1, num_workers=1,
        seed=0, compression="", blank_lines_separate_docs=True, lower_case=True,
        split_bytes=args.split_bytes)
    encoder = UnitEncoder(build_plan.packing_spec(
        build, tokens, tokenize_batch_lines=4096, tokenizer_factory=electra_tokenizer_factory))
    units, budget = [], args.encoder_megabytes * 1e6
    for unit in build_plan.plan_units(files, args.split_bytes, True):
        if budget <= 0:
            break
        units.append(unit)
        budget -= unit.size
    stats = collections.Counter()
    list(encoder.encode(units[0], collections.Counter()))  # trace the tokenizer first
    started = time.process_time()
    for unit in units:
        for _ in encoder.encode(unit, stats):
            pass
    return round(stats["tokens"] / (time.process_time() - started))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=64.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--split_bytes", type=int, default=4 << 20)
    parser.add_argument("--num_shards", type=int, default=8)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--encoder_megabytes", type=float, default=16.0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="best of N builds per executor, interleaved")
    args = parser.parse_args()

    import logging

    import tensorflow as tf

    # One thread in this process too (the in-process encoder measure): per core.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    from electra_tf.text.embedded_corpus import embedded_corpus_files

    tmp = tempfile.mkdtemp(prefix="corpus_builder_beam_")
    try:
        if os.path.isdir(SHARED_CORPUS):
            corpus = SHARED_CORPUS
            files = slice_corpus(SHARED_CORPUS, args.megabytes, tmp)
        else:
            corpus = "embedded (Python stdlib docstrings)"
            files = embedded_corpus_files(os.path.join(tmp, "embedded"))
        vocab_path = os.path.join(tmp, "vocab.txt")
        learn_vocab(files, args.vocab_size, vocab_path)

        result = {"benchmark": "corpus_builder_beam", "corpus": corpus,
                  "megabytes": round(sum(os.path.getsize(f) for f in files) / 1e6, 2),
                  "workers": args.workers, "split_bytes": args.split_bytes,
                  "max_seq_length": args.max_seq_length, "num_shards": args.num_shards,
                  "cpus": os.cpu_count(), "repeats": args.repeats}
        sidecars, best = {}, {}
        for repeat in range(args.repeats):  # interleaved: load changes hit both alike
            for name, build in _builders(files, vocab_path, args).items():
                sidecar, wall, cpu = _timed(build, os.path.join(tmp, f"{name}-{repeat}"))
                sidecars[name] = sidecar
                best[name] = min(best.get(name, (wall, cpu)), (wall, cpu))
        for name, (wall, cpu) in best.items():
            sidecar = sidecars[name]
            result[f"{name}_seconds"] = round(wall, 2)
            result[f"{name}_cpu_seconds"] = round(cpu, 2)
            result[f"{name}_tokens_per_s"] = round(sidecar["tokens"] / wall)
            result[f"{name}_tokens_per_cpu_s"] = round(sidecar["tokens"] / cpu)
        result["units"] = sidecars["local"]["units"]
        result["tokens"] = sidecars["local"]["tokens"]
        result["examples"] = sidecars["local"]["examples"]
        result["same_corpus_counts"] = all(
            sidecars["local"][k] == sidecars["beam"][k] for k in SAME_FIELDS)
        result["ratio_beam_over_local"] = round(
            result["beam_tokens_per_s"] / result["local_tokens_per_s"], 3)
        result["ratio_beam_over_local_cpu"] = round(
            result["beam_tokens_per_cpu_s"] / result["local_tokens_per_cpu_s"], 3)
        result["unit_encoder_tokens_per_cpu_s"] = _encoder_throughput(files, vocab_path, args)
        print(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
