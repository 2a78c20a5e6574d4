"""Corpus builder throughput: tokens/s per worker process, ours vs HuggingFace tokenizers.

Both runs go end to end through `build_pretraining_data` (read text, tokenize, pack as
the reference's rules, serialize, write TFRecords) with one worker and one thread each, over the same text
and the same vocabulary; only the tokenizer differs: ours (`ElectraTokenizer`,
tensorflow-text `FastBertTokenizer`) or `tokenizers.BertWordPieceTokenizer.encode_batch`.
Text: the first --megabytes of ../shared/data/en_corpus when present, else the embedded
corpus (Python standard-library docstrings). Vocabulary: learned from that text with
HuggingFace's WordPiece trainer (fast; vocabulary quality is not what is measured).
Prints ONE JSON line.

Usage: python benchmarks/corpus_builder.py [--megabytes=8] [--repeats=2]
"""

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time

# One thread for both tokenizers: the figure is per worker process (per core). Set before
# TensorFlow and tokenizers start their thread pools.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED_CORPUS = os.path.join(os.path.dirname(REPO), "shared", "data", "en_corpus")


def hf_tokenizer_factory(vocab, lower_case):
    """HuggingFace BertWordPieceTokenizer with the same vocabulary and normalisation."""
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(
        {token: i for i, token in enumerate(vocab)}, unk_token="[UNK]", clean_text=True,
        handle_chinese_chars=True, strip_accents=lower_case, lowercase=lower_case)

    import numpy as np

    # encode_batch_fast skips offset tracking: the fastest batch path tokenizers offers.
    encode = getattr(tokenizer._tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    def run(lines):
        encodings = encode(lines, add_special_tokens=False)
        ids = [e.ids for e in encodings]
        splits = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in ids], out=splits[1:])
        return np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64,
                           count=int(splits[-1])), splits

    return run


def slice_corpus(directory, megabytes, out_dir):
    """First `megabytes` of the corpus, cut at line ends, as files in out_dir."""
    budget = int(megabytes * 1e6)
    paths = []
    names = sorted(n for n in os.listdir(directory) if n.endswith(".txt"))
    for name in names:
        if budget <= 0:
            break
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read(budget)
            data += f.readline()  # finish the last line
        path = os.path.join(out_dir, name)
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        budget -= len(data)
    return paths


def learn_vocab(files, vocab_size, path):
    """A WordPiece vocabulary of the files, learned by HuggingFace's trainer, written to path.

    The vocabulary only has to be plausible (the benchmarks measure tokenization, packing
    and writing speed): HF's trainer learns one in seconds, while the project's
    tensorflow-text learner takes minutes on book text and its alphabet (~8900 tokens with
    every rare character) exceeds an 8000-token vocabulary.

    Returns:
        The tokens.
    """
    from tokenizers import BertWordPieceTokenizer

    from electra_tf.text.vocab import write_vocab

    trainer = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True,
                                     strip_accents=True, lowercase=True)
    trainer.train(files, vocab_size=vocab_size, limit_alphabet=500, show_progress=False,
                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    vocab = [t for t, _ in sorted(trainer.get_vocab().items(), key=lambda item: item[1])]
    write_vocab(vocab, path)
    return vocab


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs per tokenizer")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--max_seq_length", type=int, default=128)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from electra_tf.data.pretraining_builder import build_pretraining_data
    from electra_tf.text.embedded_corpus import embedded_corpus_files

    tmp = tempfile.mkdtemp(prefix="corpus_builder_bench_")
    if os.path.isdir(SHARED_CORPUS):
        corpus = SHARED_CORPUS
        files = slice_corpus(SHARED_CORPUS, args.megabytes, tmp)
    else:
        corpus = "embedded (Python stdlib docstrings)"
        files = embedded_corpus_files(os.path.join(tmp, "embedded"))
    n_bytes = sum(os.path.getsize(f) for f in files)

    started = time.time()
    vocab_path = os.path.join(tmp, "vocab.txt")
    vocab = learn_vocab(files, args.vocab_size, vocab_path)
    vocab_seconds = time.time() - started

    def run(name, factory, i):
        out = os.path.join(tmp, f"{name}-{i}")
        wall, cpu = time.perf_counter(), time.process_time()
        sidecar = build_pretraining_data(files, vocab_path, out, num_shards=4, num_workers=1,
                                         max_seq_length=args.max_seq_length,
                                         tokenizer_factory=factory)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return sidecar, wall, cpu

    from electra_tf.data.unit_encoder import electra_tokenizer_factory

    best = {}
    for i in range(args.repeats):  # interleaved, so that load changes hit both alike
        for name, factory in (("ours", electra_tokenizer_factory),
                              ("hf", hf_tokenizer_factory)):
            sidecar, wall, cpu = run(name, factory, i)
            if name not in best or wall < best[name][1]:
                best[name] = (sidecar, wall, cpu)

    # How often the two tokenizers agree, on the first lines (same vocabulary).
    sample = [ln.strip() for ln in itertools.islice(
        itertools.chain.from_iterable(open(f, encoding="utf-8", errors="replace")
                                      for f in files), 3000) if ln.strip()]
    ours_ids, ours_splits = electra_tokenizer_factory(vocab, True)(sample)
    hf_ids, hf_splits = hf_tokenizer_factory(vocab, True)(sample)
    same = sum(ours_ids[ours_splits[i]:ours_splits[i + 1]].tolist()
               == hf_ids[hf_splits[i]:hf_splits[i + 1]].tolist() for i in range(len(sample)))

    result = {"benchmark": "corpus_builder", "corpus": corpus, "megabytes": round(n_bytes / 1e6, 2),
              "vocab_size": len(vocab), "vocab_learn_s": round(vocab_seconds, 1),
              "max_seq_length": args.max_seq_length, "workers": 1, "threads": 1,
              "repeats": args.repeats}
    for name, (sidecar, wall, cpu) in best.items():
        tokens = sidecar["tokens"]
        result[f"{name}_tokens"] = tokens
        result[f"{name}_examples"] = sidecar["examples"]
        result[f"{name}_seconds"] = round(wall, 2)
        result[f"{name}_tokens_per_s"] = round(tokens / wall)
        result[f"{name}_tokens_per_cpu_s"] = round(tokens / cpu)
    result["ratio_ours_over_hf"] = round(result["ours_tokens_per_s"] / result["hf_tokens_per_s"], 3)
    result["ratio_ours_over_hf_cpu"] = round(
        result["ours_tokens_per_cpu_s"] / result["hf_tokens_per_cpu_s"], 3)
    result["identical_line_ids_fraction"] = round(same / max(1, len(sample)), 4)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
