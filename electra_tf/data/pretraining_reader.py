r"""tf.data reader of the pretraining TFRecords, and the checks of their `dataset.json` sidecar.

The shards hold `input_ids`, `input_mask` and `segment_ids` (int64, fixed length, the
reference schema; docs/architecture.md, "Pretraining data"); the reader yields keras-hub names (`token_ids`, `padding_mask`,
`segment_ids`, int32) in batches of static shape. Order follows the reference
`pretrain_data.get_input_fn`: files -> repeat -> shuffle files -> parallel interleave ->
shuffle examples -> batch with drop_remainder.

Example:

>>> import tempfile
>>> from electra_tf.data.pretraining_builder import build_pretraining_data
>>> from electra_tf.text.vocab import SPECIAL_TOKENS, vocab_hash, write_vocab
>>> root = tempfile.mkdtemp()
>>> tokens = list(SPECIAL_TOKENS) + ["北", "京", "is", "a", "city"]
>>> write_vocab(tokens, f"{root}/vocab.txt")
>>> with open(f"{root}/corpus.txt", "w", encoding="utf-8") as f:
...     _ = f.write("北京 is a city\n" * 8)
>>> _ = build_pretraining_data(f"{root}/corpus.txt", f"{root}/vocab.txt", f"{root}/data",
...                            max_seq_length=16)
>>> check_sidecar(read_sidecar(f"{root}/data"), vocab_hash=vocab_hash(tokens),
...               max_seq_length=16, where="this run")
>>> batch = next(iter(pretraining_dataset(f"{root}/data", 2, 16)))
>>> batch["token_ids"].shape, batch["token_ids"].dtype
(TensorShape([2, 16]), tf.int32)
"""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

SIDECAR_NAME = "dataset.json"
SHARD_PREFIX = "pretrain-"
FEATURES = ("input_ids", "input_mask", "segment_ids")
# Files read at once by the interleave (the reference uses min(4 CPU threads, #files)).
_CYCLE_LENGTH = 8


class DataError(ValueError):
    """Pretraining data is missing or unusable (one-line message naming the path)."""


class DataMismatchError(DataError):
    """Pretraining data was built for another vocabulary, sequence length or configuration."""


def _sidecar_path(file_pattern: str) -> str:
    """`dataset.json` next to the shards: in the directory itself, or beside the pattern."""
    if tf.io.gfile.isdir(file_pattern):
        return os.path.join(file_pattern, SIDECAR_NAME)
    return os.path.join(os.path.dirname(file_pattern) or ".", SIDECAR_NAME)


def read_sidecar(file_pattern: str) -> dict:
    """Reads the `dataset.json` written by tools/build_pretraining_data.py next to the shards.

    Args:
        file_pattern: the shards' directory, or a glob of shards in one directory
            (e.g. `DIR/pretrain-*.tfrecord`).

    Returns:
        The sidecar as a dict (`vocab_hash`, `vocab_size`, `lower_case`, `max_seq_length`,
        `examples`, `tokens`, `num_shards`, `compression`, `shards`, ...), with the key
        `path` set to the sidecar's path.

    Raises:
        DataError: no sidecar (an unfinished build, or data not made by this project), or
            a sidecar that is not valid JSON.
    """
    path = _sidecar_path(file_pattern)
    if not tf.io.gfile.exists(path):
        raise DataError(
            f"no {SIDECAR_NAME} next to {file_pattern}: the build there is unfinished or was "
            f"not made by tools/build_pretraining_data.py; (re)run that tool on it")
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            sidecar = json.loads(f.read())
    except (ValueError, tf.errors.OpError) as e:
        raise DataError(f"{path} is not a readable JSON sidecar ({e}); rebuild the data "
                        f"with tools/build_pretraining_data.py") from None
    if not isinstance(sidecar, dict) or "max_seq_length" not in sidecar:
        raise DataError(f"{path} lacks max_seq_length: not a pretraining data sidecar; rebuild "
                        f"the data with tools/build_pretraining_data.py")
    sidecar["path"] = path
    return sidecar


def check_sidecar(sidecar: dict, *, vocab_hash: Optional[str], max_seq_length: Optional[int],
                  where: str, vocab_where: Optional[str] = None,
                  length_where: Optional[str] = None,
                  lower_case: Optional[bool] = None) -> None:
    """Refuses data built with another vocabulary, sequence length or casing than the model's.

    Args:
        sidecar: as returned by `read_sidecar`.
        vocab_hash: the model's `vocab_hash(tokens)`; None skips this check.
        max_seq_length: the model's sequence length; None skips this check.
        where: what holds the expected values (a config file, a model dir), for the message.
        vocab_where: the vocabulary file the hash is of (default `where`).
        length_where: what sets the expected `data.max_seq_length` (default `where`).
        lower_case: the model's `data.lower_case`; None (or a sidecar without it) skips it.

    Raises:
        DataMismatchError: one sentence naming the sidecar, the key, both values and the fix.
    """
    source = sidecar.get("path", "the data's sidecar")
    if vocab_hash is not None and sidecar.get("vocab_hash") != vocab_hash:
        raise DataMismatchError(
            f"{source} records vocab_hash={sidecar.get('vocab_hash')!r} but "
            f"{vocab_where or where} has vocab_hash={vocab_hash!r}: the data was built with "
            "another vocabulary; rebuild the data with this vocab.txt or train with the "
            "vocabulary the data was built with")
    found = sidecar.get("max_seq_length")
    if max_seq_length is not None and found != max_seq_length:
        raise DataMismatchError(
            f"{source} records max_seq_length={found!r} but {length_where or where} sets "
            f"data.max_seq_length={max_seq_length!r}; rebuild the data with "
            f"--max_seq_length={max_seq_length} or set data.max_seq_length={found!r}")
    found = sidecar.get("lower_case")
    if lower_case is not None and found is not None and bool(found) != bool(lower_case):
        raise DataMismatchError(
            f"{source} records lower_case={bool(found)} but {where} sets "
            f"data.lower_case={bool(lower_case)}; set data.lower_case={bool(found)} (the "
            "data's casing) or rebuild the data")


def _looks_like_shard(name: str) -> bool:
    return name.startswith(SHARD_PREFIX) or ".tfrecord" in name


def shard_files(file_pattern: str, sidecar: Optional[dict] = None) -> list[str]:
    """The shards `file_pattern` selects, in the sidecar's order.

    A directory selects every shard its `dataset.json` lists. A glob selects the listed
    shards it matches and ignores what it matches besides them (the sidecar itself, hidden
    files, folders), so `DIR/*` works; a matched TFRecord the sidecar does not list (a
    shard of another build) is refused, since it may not fit the data's schema.

    Args:
        file_pattern: the shards' directory, or a glob of shards in one directory.
        sidecar: `read_sidecar(file_pattern)`; read if None.

    Raises:
        DataError: a listed shard is missing, an unlisted shard is matched, or nothing is.
    """
    sidecar = read_sidecar(file_pattern) if sidecar is None else sidecar
    listed = sidecar.get("shards")
    source = sidecar.get("path", SIDECAR_NAME)
    if tf.io.gfile.isdir(file_pattern):
        directory = file_pattern
        if isinstance(listed, list):
            files = [os.path.join(directory, name) for name in listed]
        else:  # A sidecar older than the shard list: every shard-named file.
            files = sorted(tf.io.gfile.glob(os.path.join(directory, SHARD_PREFIX + "*")))
        missing = [f for f in files if not tf.io.gfile.exists(f)]
        if missing:
            raise DataError(f"{missing[0]} is listed in {source} but missing "
                            f"({len(missing)} of {len(files)} shards); rerun "
                            f"tools/build_pretraining_data.py with the same flags to rebuild")
    else:
        matched = sorted(tf.io.gfile.glob(file_pattern))
        candidates = [m for m in matched
                      if os.path.basename(m) != SIDECAR_NAME
                      and not os.path.basename(m).startswith(".")
                      and not tf.io.gfile.isdir(m)]
        if isinstance(listed, list):
            names = set(listed)
            strays = [m for m in candidates if os.path.basename(m) not in names
                      and _looks_like_shard(os.path.basename(m))]
            if strays:
                raise DataError(
                    f"{strays[0]} matches {file_pattern} but is not a shard listed in "
                    f"{source} (a shard of another build?); move it out, or pass the data "
                    "directory itself")
            chosen = {os.path.basename(m): m for m in candidates
                      if os.path.basename(m) in names}
            files = [chosen[name] for name in listed if name in chosen]
        else:
            files = [m for m in candidates if _looks_like_shard(os.path.basename(m))]
    if not files:
        raise DataError(f"{file_pattern} matches no TFRecord shard; pass the directory "
                        f"written by tools/build_pretraining_data.py or a glob of its shards")
    return files


_shard_files = shard_files  # The name this module used before (kept for callers).


def _record_size_bounds(max_seq_length: int, vocab_size: int) -> tuple[int, int]:
    """Smallest and largest size in bytes of one example's TFRecord (framing included).

    Every example holds the three features at `max_seq_length` values each; varints make a
    value 1 byte when small and at most `vocab_size - 1`'s length for token ids. Sizes are
    measured on real protos rather than derived, so they follow the wire format exactly.
    """
    def size(token_id):
        feature = lambda value: tf.train.Feature(  # noqa: E731
            int64_list=tf.train.Int64List(value=[value] * max_seq_length))
        example = tf.train.Example(features=tf.train.Features(feature={
            "input_ids": feature(token_id), "input_mask": feature(1),
            "segment_ids": feature(1)}))
        return example.ByteSize() + 16  # length (8) + its CRC (4) + data + data CRC (4)

    return size(0), size(max(0, vocab_size - 1))


def check_shards(file_pattern: str, sidecar: Optional[dict] = None, *,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 require_examples: bool = True, full: bool = False) -> list[str]:
    """Checks the shards `file_pattern` selects against `dataset.json`, before any reading.

    Cheap checks (one `stat` per shard): each shard has the size the sidecar records
    (`shard_bytes`; sidecars without it get a size range derived from `examples_per_shard`,
    `max_seq_length` and `vocab_size`), so a truncated, damaged or foreign shard is named
    before training instead of failing (or not) mid-run; and there are examples to read,
    for this input pipeline too (a repeated empty dataset spins forever). With `full`,
    every record is also read back (CRC and schema) and counted.

    Args:
        file_pattern: the shards' directory or a glob of them.
        sidecar: `read_sidecar(file_pattern)`; read if None.
        input_context: this pipeline's place (see `pretraining_dataset`).
        require_examples: refuse a selection (or a pipeline's share) without examples.
        full: also read every record (slow: the whole data).

    Returns:
        The shard files, as `shard_files` gives them.

    Raises:
        DataError: naming the shard (or the data) and what to do.
    """
    sidecar = read_sidecar(file_pattern) if sidecar is None else sidecar
    files = shard_files(file_pattern, sidecar)
    source = sidecar.get("path", SIDECAR_NAME)
    listed = sidecar.get("shards")
    index = {name: i for i, name in enumerate(listed)} if isinstance(listed, list) else {}

    def per_shard(key):
        values = sidecar.get(key)
        if not isinstance(values, list) or len(values) != len(index):
            return None
        return [values[index[os.path.basename(f)]] if os.path.basename(f) in index else None
                for f in files]

    sizes, counts = per_shard("shard_bytes"), per_shard("examples_per_shard")
    rebuild = "rerun tools/build_pretraining_data.py with the same flags to rebuild it"
    bounds = None
    if counts is not None and sizes is None and not sidecar.get("compression"):
        bounds = _record_size_bounds(int(sidecar["max_seq_length"]),
                                     int(sidecar.get("vocab_size") or 1 << 31))
    for i, path in enumerate(files):
        actual = tf.io.gfile.stat(path).length
        if sizes is not None and sizes[i] is not None and actual != sizes[i]:
            raise DataError(f"{path} is {actual} bytes but {source} records {sizes[i]} "
                            f"(shard_bytes): the shard is damaged or from another build; "
                            f"{rebuild}")
        if bounds is not None and counts[i] is not None:
            low, high = counts[i] * bounds[0], counts[i] * bounds[1]
            if not low <= actual <= high:
                raise DataError(
                    f"{path} is {actual} bytes but its {counts[i]} examples of "
                    f"max_seq_length={sidecar['max_seq_length']} ({source}) take {low} to "
                    f"{high}: the shard is damaged or from another build; {rebuild}")
    if full:
        for i, path in enumerate(files):
            found, problem = _scan_shard(path, sidecar)
            if problem is None and counts is not None and counts[i] is not None \
                    and found != counts[i]:
                problem = f"holds {found} examples but {source} records {counts[i]}"
            if problem is not None:
                raise DataError(f"{path} {problem}; {rebuild}")
    if require_examples:
        total = sum(c for c in counts if c) if counts is not None else sidecar.get("examples")
        if total and all(tf.io.gfile.stat(f).length == 0 for f in files):
            raise DataError(
                f"every shard {file_pattern} selects is empty (0 bytes) but {source} records "
                f"{total} examples: the shards were truncated or replaced; rerun "
                "tools/build_pretraining_data.py with the same flags to rebuild them")
        if total is not None and int(total) <= 0:
            raise DataError(
                f"{file_pattern} holds no examples ({source} records 0): the corpus was "
                f"empty or unreadable; rebuild the data from text with "
                f"tools/build_pretraining_data.py")
        num_pipelines = input_context.num_input_pipelines if input_context else 1
        if counts is not None and num_pipelines > 1 and len(files) >= num_pipelines:
            pipeline_id = input_context.input_pipeline_id
            share = sum(c or 0 for c in counts[pipeline_id::num_pipelines])
            if share == 0:
                raise DataError(
                    f"input pipeline {pipeline_id} of {num_pipelines} reads shards of "
                    f"{file_pattern} that hold no examples ({source}, examples_per_shard); "
                    "rebuild the data with fewer, fuller shards")
    return files


def _scan_shard(path: str, sidecar: dict) -> tuple[int, Optional[str]]:
    """Reads every record of one shard: (records read, the problem found or None)."""
    length = int(sidecar["max_seq_length"])
    vocab_size = sidecar.get("vocab_size")
    spec = {name: tf.io.FixedLenFeature([length], tf.int64) for name in FEATURES}
    dataset = tf.data.TFRecordDataset(path, compression_type=sidecar.get("compression", ""))
    found = 0
    try:
        for batch in dataset.batch(1024):
            features = tf.io.parse_example(batch, spec)
            if vocab_size:
                top = int(tf.reduce_max(features["input_ids"]))
                if top >= int(vocab_size):
                    return found, (f"holds token id {top}, outside the vocabulary of "
                                   f"{vocab_size} its sidecar records")
            found += int(batch.shape[0])
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        detail = e.message.splitlines()[0] if e.message else type(e).__name__
        return found, f"is damaged after {found} examples ({detail[:160]})"
    return found, None


def find_damaged_shard(file_pattern: str) -> Optional[tuple[str, str]]:
    """Reads every shard `file_pattern` selects; the first one that cannot be read back.

    What the trainer calls when reading fails mid-run (a TensorFlow error names neither the
    file nor the record), so that the message names the shard.

    Returns:
        (shard path, what is wrong) or None when every shard reads back cleanly.
    """
    sidecar = read_sidecar(file_pattern)
    for path in shard_files(file_pattern, sidecar):
        _, problem = _scan_shard(path, sidecar)
        if problem is not None:
            return path, problem
    return None


def pretraining_dataset(file_pattern: str, batch_size: int, max_seq_length: int, *,
                        input_context: Optional[tf.distribute.InputContext] = None,
                        shuffle: bool = True, repeat: bool = True, seed: int = 0,
                        shuffle_buffer_size: int = 1000) -> tf.data.Dataset:
    """Batches of pretraining examples for one input pipeline.

    Args:
        file_pattern: the shards' directory or a glob of shards next to a `dataset.json`.
        batch_size: examples per batch of this pipeline (per replica when used with
            `strategy.distribute_datasets_from_function`).
        max_seq_length: must equal the sidecar's (DataMismatchError otherwise).
        input_context: `tf.distribute.InputContext`; the pipeline reads its share: whole
            files when there are at least as many files as pipelines, else every n-th example.
        shuffle: shuffle files and examples (training); False keeps file order (evaluation).
        repeat: repeat forever (training); False reads each example once.
        seed: seed of both shuffles; the same seed gives the same order.
        shuffle_buffer_size: examples in the shuffle buffer.

    Returns:
        A `tf.data.Dataset` of dicts `token_ids`, `segment_ids`, `padding_mask`, each int32
        [batch_size, max_seq_length] (remainder dropped).

    Raises:
        DataError: no sidecar, no shard, a shard that does not fit the sidecar (see
            `check_shards`), or no examples to repeat; DataMismatchError: other
            max_seq_length.
    """
    sidecar = read_sidecar(file_pattern)
    check_sidecar(sidecar, vocab_hash=None, max_seq_length=max_seq_length,
                  where="pretraining_dataset(max_seq_length=...)")
    # The cheap shard checks and, when the dataset repeats, the refusal of empty data (a
    # repeated empty dataset would spin forever without yielding a batch).
    files = check_shards(file_pattern, sidecar, input_context=input_context,
                         require_examples=repeat)
    compression = sidecar.get("compression", "")

    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    shard_files = num_pipelines > 1 and len(files) >= num_pipelines

    d = tf.data.Dataset.from_tensor_slices(tf.constant(files))
    if shard_files:
        d = d.shard(num_pipelines, pipeline_id)
    n_files = -(-len(files) // num_pipelines) if shard_files else len(files)
    if repeat:
        d = d.repeat()
    if shuffle:
        # Every pipeline uses the same seed, so with example-level sharding all of them
        # see one file order and `shard` below splits it into disjoint parts.
        d = d.shuffle(n_files, seed=seed, reshuffle_each_iteration=True)
    d = d.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=compression),
        cycle_length=min(_CYCLE_LENGTH, n_files), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if num_pipelines > 1 and not shard_files:
        d = d.shard(num_pipelines, pipeline_id)
    if shuffle:
        d = d.shuffle(shuffle_buffer_size, seed=seed + 1000003 * pipeline_id,
                      reshuffle_each_iteration=True)
    d = d.batch(batch_size, drop_remainder=True)

    spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in FEATURES}

    def decode(serialized):
        # Parsing whole batches is several times faster than one example at a time.
        features = tf.io.parse_example(serialized, spec)
        return {
            "token_ids": tf.cast(features["input_ids"], tf.int32),
            "segment_ids": tf.cast(features["segment_ids"], tf.int32),
            "padding_mask": tf.cast(features["input_mask"], tf.int32),
        }

    d = d.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return d.prefetch(tf.data.AUTOTUNE)
