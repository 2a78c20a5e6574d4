r"""Builds sharded pretraining TFRecords from text (reference `build_pretraining_dataset.py`).

`build_pretraining_data` reads text files (a blank line ends a document), tokenizes many
lines per `ElectraTokenizer.tokenize` call, packs them with `packing.ExampleBuilder` and
writes `input_ids`, `input_mask`, `segment_ids` (int64, fixed length) into
`DIR/pretrain-SSSSS-of-NNNNN.tfrecord[.gz]`, plus the sidecar `DIR/dataset.json`.

Parallelism and determinism: K worker processes; input file i (sorted) belongs to worker
i % K and shard s to worker s % K, each worker writing its examples round-robin to its
shards (as the reference). A worker draws every random decision from its own
`random.Random` seeded from (seed, worker index), so the bytes depend only on the inputs,
the seed and K.

Where things go, how an interrupted build resumes and when an output directory is refused:
`build_plan`. Running the workers in processes with a progress bar: `worker_pool`. What one
worker does: `run_worker`.

Example:

>>> import tempfile
>>> from electra_tf.text.vocab import SPECIAL_TOKENS, write_vocab
>>> root = tempfile.mkdtemp()
>>> write_vocab(list(SPECIAL_TOKENS) + ["the", "cat", "sat", ".", "猫", "坐"], f"{root}/vocab.txt")
>>> with open(f"{root}/corpus.txt", "w", encoding="utf-8") as f:
...     _ = f.write("the cat sat .\nthe cat sat .\n\n猫坐了。\n")
>>> sidecar = build_pretraining_data(f"{root}/corpus.txt", f"{root}/vocab.txt",
...                                  f"{root}/data", max_seq_length=16, num_shards=2)
>>> sidecar["documents"], sidecar["max_seq_length"], len(sidecar["shards"])
(2, 16, 2)
"""

from __future__ import annotations

import collections
import os
import random
from typing import Callable, Optional, Sequence, Union

from electra_tf.data import build_plan, packing, worker_pool
from electra_tf.data.build_plan import WorkerJob, shard_name, write_json
from electra_tf.data.example_encoding import serialize_examples
from electra_tf.data.pretraining_reader import FEATURES, DataError

# Lines per tokenize call: large enough that per-call overhead vanishes, small enough that
# memory stays flat (a few MB of text).
DEFAULT_TOKENIZE_BATCH_LINES = 4096


def electra_tokenizer_factory(vocab: Sequence[str], lower_case: bool) -> Callable:
    """Default tokenizer of the builder: `ElectraTokenizer.tokenize` on batches of lines.

    Args:
        vocab: the vocabulary tokens.
        lower_case: lower-case and strip accents.

    Returns:
        A function lines (list[str]) -> (flat ids np.ndarray, row_splits np.ndarray).
    """
    import tensorflow as tf

    from electra_tf.text.tokenizer import ElectraTokenizer

    tokenizer = ElectraTokenizer(list(vocab), lower_case=lower_case)

    # One traced graph for every batch: eager dispatch of the tokenizer's ops costs more
    # than tokenizing a few hundred lines. No autograph: there is no Python control flow to
    # convert, and converting tensorflow-text's sources takes seconds.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def tokenize(lines):
        ragged = tokenizer.tokenize(lines)
        return ragged.flat_values, ragged.row_splits

    def run(lines):
        values, splits = tokenize(tf.constant(lines, dtype=tf.string))
        return values.numpy(), splits.numpy()

    return run


def worker_rng(seed: int, worker_index: int) -> random.Random:
    """The random stream of one worker: a function of (seed, worker index) only."""
    # A str seed is hashed with SHA-512 by `random.seed`, independent of PYTHONHASHSEED.
    return random.Random(f"electra_tf-pretraining-data:{seed}:{worker_index}")


def run_worker(job: WorkerJob, progress: Optional[Callable] = None) -> dict:
    """Tokenizes, packs and writes one worker's files into its shards.

    Args:
        job: the worker's assignment.
        progress: optional callback(bytes_read, tokens_written) called after each batch.

    Returns:
        The worker's statistics (also written to its done-marker).
    """
    import tensorflow as tf

    from electra_tf.text.corpus import iter_documents
    from electra_tf.text.vocab import special_ids

    ids = special_ids(job.vocab)
    cls_id, sep_id, pad_id = ids["cls_id"], ids["sep_id"], ids["pad_id"]
    tokenize = job.tokenizer_factory(job.vocab, job.lower_case)
    rng = worker_rng(job.seed, job.worker_index)
    files = list(job.files)
    # The reference shuffles each job's files; here from the worker's own seeded stream.
    rng.shuffle(files)
    builder = packing.ExampleBuilder(job.max_seq_length, rng=rng)
    stats = collections.Counter()
    shard_examples = [0] * len(job.shards)

    partial_paths = [os.path.join(job.build_dir, shard_name(s, job.num_shards, job.compression)
                                  + ".partial") for s in job.shards]
    options = tf.io.TFRecordOptions(compression_type=job.compression)
    writers = [tf.io.TFRecordWriter(p, options) for p in partial_paths]
    n_written = 0

    def flush(pieces, n_chars):
        """Tokenizes pieces (lines, end_of_document) in one call and packs them."""
        nonlocal n_written
        if not pieces:
            return
        lines = [line for piece, _ in pieces for line in piece]
        values, splits = tokenize(lines)
        flat = values.tolist()
        splits = splits.tolist()
        pairs = []
        line = 0
        for piece, end_of_document in pieces:
            sentences = [flat[splits[j]:splits[j + 1]] for j in range(line, line + len(piece))]
            line += len(piece)
            pairs.extend(builder.add_lines(sentences, end_of_document))
        if pairs:
            input_ids, input_mask, segment_ids = packing.examples_to_arrays(
                pairs, job.max_seq_length, cls_id=cls_id, sep_id=sep_id, pad_id=pad_id)
            records = serialize_examples(
                dict(zip(FEATURES, (input_ids, input_mask, segment_ids))))
            n_writers = len(writers)
            for record in records:
                # Round-robin over this worker's shards, as the reference ExampleWriter.
                writers[n_written % n_writers].write(record)
                shard_examples[n_written % n_writers] += 1
                n_written += 1
                if job.fail_after_examples is not None and n_written >= job.fail_after_examples:
                    raise RuntimeError(f"test hook: worker {job.worker_index} stopped after "
                                       f"{n_written} examples")
            tokens = int(input_mask.sum())
            stats["examples"] += len(records)
            stats["tokens"] += tokens
        else:
            tokens = 0
        if progress:
            progress(n_chars, tokens)

    batch = job.tokenize_batch_lines
    for path in files:
        pieces, n_lines, n_chars = [], 0, 0
        for document in iter_documents(path, job.blank_lines_separate_docs, stats):
            # A document longer than a batch (e.g. a whole file without blank lines) is
            # cut into parts, so memory stays bounded by the batch size.
            for start in range(0, len(document), batch):
                piece = document[start:start + batch]
                pieces.append((piece, start + batch >= len(document)))
                n_lines += len(piece)
                n_chars += sum(len(line) + 1 for line in piece)
                if n_lines >= batch:
                    flush(pieces, n_chars)
                    pieces, n_lines, n_chars = [], 0, 0
        flush(pieces, n_chars)
        stats["files"] += 1

    for writer in writers:
        writer.close()
    for partial in partial_paths:
        os.replace(partial, partial[:-len(".partial")])
    stats["single_segment_examples"] = builder.single_segment_examples
    stats["short_target_examples"] = builder.short_targets
    result = {
        "worker_index": job.worker_index,
        "stats": dict(stats),
        "shards": {shard_name(s, job.num_shards, job.compression): n
                   for s, n in zip(job.shards, shard_examples)},
    }
    # Written last: its presence says every shard of this worker is complete.
    write_json(job.marker_path(), result)
    return result


def build_pretraining_data(
        inputs: Union[str, Sequence[str]],
        vocab: Union[str, Sequence[str]],
        output_dir: str,
        *,
        max_seq_length: int = 128,
        num_shards: int = 1,
        num_workers: int = 1,
        seed: int = 0,
        compression: str = "",
        blank_lines_separate_docs: bool = True,
        lower_case: bool = True,
        tokenize_batch_lines: int = DEFAULT_TOKENIZE_BATCH_LINES,
        progress: bool = False,
        tokenizer_factory: Callable = electra_tokenizer_factory,
        _fail_after_examples: Optional[dict] = None,
        _sequential: bool = False) -> dict:
    """Builds (or resumes, or confirms) a sharded pretraining dataset.

    Args:
        inputs: a glob, comma-separated globs or a list of files (`expand_inputs`).
        vocab: path of vocab.txt, or the token list.
        output_dir: destination directory (created).
        max_seq_length: length of every example.
        num_shards: number of output shards.
        num_workers: worker processes; clamped to the number of shards and input files.
        seed: seed of every random decision.
        compression: "" or "GZIP".
        blank_lines_separate_docs: a blank line ends a document (else one document per file).
        lower_case: lower-case and strip accents when tokenizing.
        tokenize_batch_lines: lines per tokenize call.
        progress: show a tqdm bar (bytes read, tokens/s, ETA).
        tokenizer_factory: module-level (vocab, lower_case) -> tokenize(lines) ->
            (flat ids, row_splits); the default is `ElectraTokenizer`.
        _fail_after_examples: test hook {worker index: n}: that worker raises after n examples.
        _sequential: run the workers one after another in this process (tests: the bytes
            equal those of the parallel build, which depends only on the jobs).

    Returns:
        The sidecar written to `output_dir/dataset.json`.

    Raises:
        CorpusError (bad input files), VocabError (bad vocabulary), DataError (bad
        arguments), DataMismatchError (output_dir holds another build),
        `worker_pool.BuildInterrupted` (a worker process died).
    """
    from electra_tf.text import corpus, vocab as vocab_lib

    if compression not in ("", "GZIP"):
        raise DataError(f"compression={compression!r} is not supported; use '' or 'GZIP'")
    if num_shards < 1 or num_workers < 1:
        raise DataError(f"num_shards={num_shards} and num_workers={num_workers} must be >= 1")
    if not 5 <= max_seq_length <= 1 << 16:
        raise DataError(f"max_seq_length={max_seq_length} is out of range; use 5..65536 "
                        f"(128 or 512 as the paper)")
    if isinstance(vocab, (str, os.PathLike)):
        tokens = vocab_lib.load_vocab(os.fspath(vocab))
    else:
        tokens = list(vocab)
        vocab_lib.check_vocab(tokens, "token list")
    files = corpus.expand_inputs(inputs)
    build = build_plan.describe_build(
        tokens, files, max_seq_length=max_seq_length, num_shards=num_shards,
        num_workers=num_workers, seed=seed, compression=compression,
        blank_lines_separate_docs=blank_lines_separate_docs, lower_case=lower_case)
    previous = build_plan.prepare_output_dir(output_dir, build)
    if previous is not None:
        return previous

    jobs = build_plan.plan_jobs(
        build, files, tokens, os.path.join(output_dir, build_plan.BUILD_DIR),
        tokenize_batch_lines=tokenize_batch_lines, tokenizer_factory=tokenizer_factory,
        fail_after_examples=_fail_after_examples)
    results = {}
    todo = []
    for job in jobs:
        done = build_plan.finished_result(job, output_dir)
        if done is not None:
            results[job.worker_index] = done
        else:
            todo.append(job)
    workers = build["num_workers"]
    todo_workers = {job.worker_index for job in todo}
    todo_bytes = sum(size for i, (_, size) in enumerate(build["inputs"])
                     if i % workers in todo_workers)
    ran = worker_pool.run_jobs(run_worker, todo, total_bytes=todo_bytes, show_progress=progress,
                               in_processes=workers > 1 and not _sequential)
    results.update((job.worker_index, result) for job, result in zip(todo, ran))

    # Every worker is done: move the shards into place, then the sidecar, last.
    sidecar = build_plan.describe_sidecar(build, results)
    build_plan.publish(output_dir, sidecar)
    return sidecar
