"""Builds sharded pretraining TFRecords from text (reference `build_pretraining_dataset.py`).

`build_pretraining_data` reads text files (a blank line ends a document, SPEC 6), tokenizes
many lines per `ElectraTokenizer.tokenize` call, packs them with `packing.ExampleBuilder` and
writes `input_ids`, `input_mask`, `segment_ids` (int64, fixed length) into
`DIR/pretrain-SSSSS-of-NNNNN.tfrecord[.gz]`, plus the sidecar `DIR/dataset.json`.

Parallelism and determinism: K worker processes; input file i (sorted) belongs to worker
i % K and shard s to worker s % K, each worker writing its examples round-robin to its
shards (as the reference). A worker draws every random decision from its own
`random.Random` seeded from (seed, worker index), so the bytes depend only on the inputs,
the seed and K.

Crash safety: shards are written under `DIR/.build/` and renamed there when the worker
closes them; a worker then writes its done-marker. Only when every worker is done are the
shards moved into DIR and `dataset.json` written (last). An interrupted build therefore
leaves no shard in DIR that looks finished; running the same command again skips the
workers that finished and redoes the others from their start (same bytes). DIR holding
shards of another configuration is refused.

Example:

>>> sidecar = build_pretraining_data(["corpus.txt"], "vocab.txt", "data/", num_shards=4)
>>> sidecar["examples"], sidecar["padding_fraction"]
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import queue as queue_lib
import random
import shutil
import tempfile
import time
from typing import Callable, Optional, Sequence, Union

from electra_tf.data import packing
from electra_tf.data.pretraining_reader import (FEATURES, SHARD_PREFIX, SIDECAR_NAME,
                                                DataError, DataMismatchError)

BUILD_DIR = ".build"
_FORMAT_VERSION = 1
# Lines per tokenize call: large enough that per-call overhead vanishes, small enough that
# memory stays flat (a few MB of text).
DEFAULT_TOKENIZE_BATCH_LINES = 4096
# Counts reported at the end and recorded in the sidecar.
BAD_INPUT_COUNTS = ("invalid_utf8_lines", "empty_files", "empty_documents")


class BuildInterrupted(RuntimeError):
    """A worker died (killed, out of memory); rerunning the same command resumes the build."""


def shard_name(index: int, num_shards: int, compression: str = "") -> str:
    """File name of shard `index` (0-based): `pretrain-SSSSS-of-NNNNN.tfrecord[.gz]`.

    Args:
        index: shard index.
        num_shards: total number of shards.
        compression: "" or "GZIP".
    """
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return f"{SHARD_PREFIX}{index:05d}-of-{num_shards:05d}{suffix}"


# --- Tokenizers --------------------------------------------------------------------------

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


# --- One worker ------------------------------------------------------------------------------

@dataclasses.dataclass
class WorkerJob:
    """What one worker reads and writes; picklable, so it crosses into worker processes.

    Args:
        worker_index: index of this worker in [0, num_workers).
        num_workers: number of workers of the build.
        files: input files of this worker, in assignment order.
        shards: shard indices this worker writes.
        build_dir: directory for partial shards and done-markers.
        vocab: vocabulary tokens.
        lower_case: tokenizer casing.
        max_seq_length: example length.
        num_shards: total number of shards.
        seed: build seed.
        compression: "" or "GZIP".
        blank_lines_separate_docs: a blank line ends a document.
        tokenize_batch_lines: lines per tokenize call.
        tokenizer_factory: (vocab, lower_case) -> tokenize function; module-level, picklable.
        fail_after_examples: test hook: raise after writing this many examples (a crash).
    """

    worker_index: int
    num_workers: int
    files: list
    shards: list
    build_dir: str
    vocab: list
    lower_case: bool
    max_seq_length: int
    num_shards: int
    seed: int
    compression: str
    blank_lines_separate_docs: bool
    tokenize_batch_lines: int = DEFAULT_TOKENIZE_BATCH_LINES
    tokenizer_factory: Callable = electra_tokenizer_factory
    fail_after_examples: Optional[int] = None

    def marker_path(self) -> str:
        return os.path.join(self.build_dir,
                            f"worker-{self.worker_index:05d}-of-{self.num_workers:05d}.json")


def worker_rng(seed: int, worker_index: int) -> random.Random:
    """The random stream of one worker: a function of (seed, worker index) only."""
    # A str seed is hashed with SHA-512 by `random.seed`, independent of PYTHONHASHSEED.
    return random.Random(f"electra_tf-pretraining-data:{seed}:{worker_index}")


def _write_json_atomic(path: str, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a sidecar is for everyone.
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
            records = packing.serialize_examples(
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
    _write_json_atomic(job.marker_path(), result)
    return result


# Worker-process side of the progress queue (set by the pool initializer).
_PROGRESS_QUEUE = None


def _init_worker_process(progress_queue):
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    import tensorflow as tf

    # One core per worker: K workers use K cores, and "tokens/s per worker" means per core.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _run_worker_in_process(job: WorkerJob) -> dict:
    def progress(n_bytes, n_tokens):
        _PROGRESS_QUEUE.put((n_bytes, n_tokens))

    return run_worker(job, progress)


# --- The build --------------------------------------------------------------------------------

def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        import tensorflow as tf

        return tf.io.gfile.stat(path).length


def _describe(key, value):
    if key == "inputs":
        return f"{len(value)} input files ({sum(size for _, size in value)} bytes)"
    return f"{key}={value!r}"


def _check_same_build(found: dict, wanted: dict, output_dir: str, source: str) -> None:
    for key in wanted:
        if found.get(key) != wanted[key]:
            raise DataMismatchError(
                f"{output_dir} holds shards of another configuration ({source} has "
                f"{_describe(key, found.get(key))}, this build {_describe(key, wanted[key])}); "
                f"use another --output_dir or delete {output_dir}")


def _progress_bar(total_bytes: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                desc="building", smoothing=0.1, dynamic_ncols=True)


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
        arguments), DataMismatchError (output_dir holds another build), BuildInterrupted.
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
    sizes = [_file_size(f) for f in files]
    workers = max(1, min(num_workers, num_shards, len(files)))

    build = {
        "format_version": _FORMAT_VERSION,
        "vocab_hash": vocab_lib.vocab_hash(tokens),
        "vocab_size": len(tokens),
        "lower_case": bool(lower_case),
        "max_seq_length": int(max_seq_length),
        "num_shards": int(num_shards),
        "num_workers": int(workers),
        "seed": int(seed),
        "compression": compression,
        "blank_lines_separate_docs": bool(blank_lines_separate_docs),
        "inputs": [[os.path.abspath(f), s] for f, s in zip(files, sizes)],
    }
    names = [shard_name(i, num_shards, compression) for i in range(num_shards)]
    build_dir = os.path.join(output_dir, BUILD_DIR)
    sidecar_path = os.path.join(output_dir, SIDECAR_NAME)
    plan_path = os.path.join(build_dir, "build.json")

    # Refuse to mix builds; recognise a finished or an interrupted build of the same command.
    ours = False  # the shards in output_dir are known to come from this very build
    if os.path.exists(sidecar_path):
        with open(sidecar_path, encoding="utf-8") as f:
            previous = json.load(f)
        _check_same_build(previous.get("build", {}), build, output_dir, sidecar_path)
        if all(os.path.exists(os.path.join(output_dir, n)) for n in names):
            previous["already_complete"] = True
            return previous
        # Shards removed by hand: rebuild them below (the sidecar goes first).
        os.remove(sidecar_path)
        ours = True
    if os.path.exists(plan_path):
        with open(plan_path, encoding="utf-8") as f:
            plan = json.load(f)
        if any(n.startswith("worker-") for n in os.listdir(build_dir)):
            # Some workers finished: their shards are only reusable by the same build.
            _check_same_build(plan, build, output_dir, plan_path)
            ours = True
        elif plan == build:
            ours = True  # the same build, interrupted before any worker finished
        else:
            # Nothing finished (e.g. a bad input file stopped it): start afresh.
            shutil.rmtree(build_dir)
    if not ours and not os.path.exists(plan_path) and os.path.isdir(output_dir):
        foreign = sorted(n for n in os.listdir(output_dir) if n.startswith(SHARD_PREFIX))
        if foreign:
            raise DataMismatchError(
                f"{output_dir} holds shards ({foreign[0]}, ...) with no {SIDECAR_NAME} or "
                f"build plan of this tool; use another --output_dir or delete them")
    os.makedirs(build_dir, exist_ok=True)
    if not os.path.exists(plan_path):
        _write_json_atomic(plan_path, build)

    jobs = []
    for w in range(workers):
        jobs.append(WorkerJob(
            worker_index=w, num_workers=workers,
            files=[f for i, f in enumerate(files) if i % workers == w],
            shards=[s for s in range(num_shards) if s % workers == w],
            build_dir=build_dir, vocab=tokens, lower_case=bool(lower_case),
            max_seq_length=int(max_seq_length), num_shards=int(num_shards), seed=int(seed),
            compression=compression, blank_lines_separate_docs=bool(blank_lines_separate_docs),
            tokenize_batch_lines=int(tokenize_batch_lines),
            tokenizer_factory=tokenizer_factory,
            fail_after_examples=(_fail_after_examples or {}).get(w)))

    def finished(job):
        if not os.path.exists(job.marker_path()):
            return None
        with open(job.marker_path(), encoding="utf-8") as f:
            result = json.load(f)
        for s in job.shards:
            if not any(os.path.exists(os.path.join(d, names[s])) for d in (build_dir, output_dir)):
                return None
        return result

    results = {}
    todo = []
    for job in jobs:
        done = finished(job)
        if done is not None:
            results[job.worker_index] = done
        else:
            todo.append(job)
    todo_bytes = sum(s for i, s in enumerate(sizes) if i % workers in {j.worker_index for j in todo})
    started = time.time()
    bar = _progress_bar(todo_bytes, progress and bool(todo))
    tokens_done = [0]

    def on_progress(n_bytes, n_tokens):
        tokens_done[0] += n_tokens
        if bar is not None:
            bar.update(n_bytes)
            elapsed = max(time.time() - started, 1e-9)
            bar.set_postfix_str(f"{tokens_done[0] / elapsed:,.0f} tok/s", refresh=False)

    try:
        if workers == 1 or _sequential:
            for job in todo:
                results[job.worker_index] = run_worker(job, on_progress)
        elif todo:
            results.update(_run_in_processes(todo, on_progress))
    except BaseException:
        if bar is not None:
            bar.leave = False  # Clear the bar so that the error is the one line left.
        raise
    finally:
        if bar is not None:
            bar.close()

    # Every worker is done: move the shards into place, then the sidecar, last.
    for name in names:
        partial = os.path.join(build_dir, name)
        if os.path.exists(partial):
            os.replace(partial, os.path.join(output_dir, name))
    stats = collections.Counter()
    shard_examples = {}
    for w in sorted(results):
        stats.update(results[w]["stats"])
        shard_examples.update(results[w]["shards"])
    examples, n_tokens = stats["examples"], stats["tokens"]
    sidecar = {
        "vocab_hash": build["vocab_hash"],
        "vocab_size": build["vocab_size"],
        "lower_case": build["lower_case"],
        "max_seq_length": build["max_seq_length"],
        "documents": stats["documents"],
        "lines": stats["lines"],
        "examples": examples,
        "tokens": n_tokens,
        "padding_fraction": (round(1.0 - n_tokens / (examples * max_seq_length), 6)
                             if examples else 0.0),
        "single_segment_examples": stats["single_segment_examples"],
        "short_target_examples": stats["short_target_examples"],
        "num_shards": num_shards,
        "num_workers": workers,
        "compression": compression,
        "seed": int(seed),
        "input_files": len(files),
        "input_bytes": sum(sizes),
        "shards": names,
        "examples_per_shard": [shard_examples.get(n, 0) for n in names],
        "build": build,
    }
    for key in BAD_INPUT_COUNTS:
        sidecar[key] = stats[key]
    _write_json_atomic(sidecar_path, sidecar)
    shutil.rmtree(build_dir, ignore_errors=True)
    return sidecar


def _run_in_processes(jobs: list, on_progress: Callable) -> dict:
    """Runs jobs in spawned processes (TensorFlow is not fork-safe) and relays progress."""
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    results = {}
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=len(jobs), mp_context=context, initializer=_init_worker_process,
            initargs=(progress_queue,)) as pool:
        futures = {pool.submit(_run_worker_in_process, job): job for job in jobs}
        pending = set(futures)
        try:
            while pending:
                try:
                    while True:
                        on_progress(*progress_queue.get(timeout=0.2))
                except queue_lib.Empty:
                    pass
                done = {f for f in pending if f.done()}
                for future in done:
                    pending.discard(future)
                    results[futures[future].worker_index] = future.result()
        except concurrent.futures.process.BrokenProcessPool:
            raise BuildInterrupted(
                "a worker process of the build died (killed or out of memory); run the same "
                "command again to resume") from None
        except BaseException:
            for future in pending:
                future.cancel()
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            raise
    try:
        while True:
            on_progress(*progress_queue.get_nowait())
    except queue_lib.Empty:
        pass
    return results
