"""The output directory of a local pretraining-data build: its layout, readying it for a
build (the same build is recognised, another refused), resuming, and publishing.

Layout of an output directory DIR (`shard_name`, `describe_sidecar`, `describe_build` and
`WorkerJob` are `build_plan`'s):
  DIR/pretrain-SSSSS-of-NNNNN.tfrecord[.gz]   the shards (`shard_name`)
  DIR/dataset.json                            the sidecar (`describe_sidecar`), written last
  DIR/.build/build.json                       the build description (`describe_build`)
  DIR/.build/pretrain-*.tfrecord[.partial]    shards being written / closed by their worker
  DIR/.build/worker-WWWWW-of-KKKKK.json       a worker's done-marker (`WorkerJob.marker_path`)
  DIR/.build/beam/                            the Beam executor's staging (`beam_output`)

Crash safety: shards are written under `DIR/.build/` and renamed there when their worker
closes them; the worker then writes its done-marker. Only when every worker is done are the
shards moved into DIR and `dataset.json` written (`publish`). An interrupted build therefore
leaves no shard in DIR that looks finished; running the same command again skips the workers
that finished (`finished_result`) and redoes the others from their start, giving the same
bytes. DIR holding shards of another configuration is refused (`prepare_output_dir`).
Temporaries that a killed build left (`*.tmp-PID` of dead processes, in DIR and
`DIR/.build/`) are removed at start; a write that fails (a full disk, no permission) is a
one-line `DataError`, and the output directory is checked before any work
(`check_output_dir`).

The sidecar lists `shards`, `examples_per_shard` and `shard_bytes` (each shard's size in
bytes, measured once the shards are final), in shard order; sidecars of older versions may
lack `shard_bytes`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Optional, Sequence

from electra_tf.data.build_plan import WorkerJob, check_same_build, shard_name, shard_names
from electra_tf.data.pretraining_reader import (SHARD_PREFIX, SIDECAR_NAME, DataError,
                                                DataMismatchError)
from electra_tf.files import atomic_write, remove_stale_temporaries

BUILD_DIR = ".build"
PLAN_NAME = "build.json"


def write_error(path: str, e: BaseException) -> DataError:
    """The one-line `DataError` for a write that failed (a full disk, no permission).

    Args:
        path: the file that could not be written.
        e: the `OSError` or `tf.errors.OpError`.
    """
    reason = (getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
              or type(e).__name__)
    return DataError(f"cannot write {path}: {reason}; nothing was published: free space (or "
                     f"fix permissions), then run the same command again to resume")


def write_json(path: str, data: dict) -> None:
    """Writes `data` as sorted, indented JSON, atomically (markers, plan, sidecar).

    Args:
        path: destination file.
        data: JSON-serialisable mapping.

    Raises:
        DataError: the file cannot be written (nothing is left at `path`).
    """
    try:
        with atomic_write(path) as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
    except OSError as e:
        raise write_error(path, e) from None


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} ({e}): it is not this tool's JSON; delete "
                        f"{os.path.dirname(path)} or use another --output_dir") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not this tool's JSON (not an object); delete it or use "
                        f"another --output_dir")
    return data


def check_output_dir(output_dir: str) -> None:
    """Refuses an output directory that cannot be written, before any work starts.

    Args:
        output_dir: the destination directory (need not exist yet).

    Raises:
        DataError: `output_dir` is a file, a file is in the way, or no file can be created
            there (permissions, a read-only file system).
    """
    from electra_tf.text.corpus import output_path_problem

    problem = output_path_problem(output_dir, directory=True)
    if problem:
        raise DataError(f"cannot write --output_dir: {problem}; give a directory in a "
                        f"writable place")


def prepare_output_dir(output_dir: str, build: dict) -> Optional[dict]:
    """Readies `output_dir` for `build`: recognises the same build, refuses another one.

    A finished build of the same description is returned as is. Shards removed by hand from
    a finished build, and an interrupted build of the same description, are resumed; an
    interrupted build in which no worker finished is discarded. Shards of another build
    (with or without a sidecar or plan) are refused. On return `.build/` exists and holds
    the plan.

    Args:
        output_dir: the destination directory.
        build: this build's description (`describe_build`).

    Returns:
        The previous sidecar, with `already_complete` set, when the build is already done;
        else None.

    Raises:
        DataMismatchError: `output_dir` holds shards of another build.
    """
    try:
        return _prepare_output_dir(output_dir, build)
    except OSError as e:
        raise write_error(e.filename or output_dir, e) from None


def _shards_intact(output_dir: str, sidecar: dict, names: Sequence[str]) -> bool:
    """Every shard is there, with the size the sidecar recorded (when it did)."""
    sizes = sidecar.get("shard_bytes")
    for i, name in enumerate(names):
        path = os.path.join(output_dir, name)
        if not os.path.isfile(path):
            return False
        if isinstance(sizes, list) and len(sizes) == len(names) and \
                os.path.getsize(path) != sizes[i]:
            return False
    return True


def _prepare_output_dir(output_dir: str, build: dict) -> Optional[dict]:
    build_dir = os.path.join(output_dir, BUILD_DIR)
    sidecar_path = os.path.join(output_dir, SIDECAR_NAME)
    plan_path = os.path.join(build_dir, PLAN_NAME)
    # What a killed build left: `.dataset.json.tmp-PID`, `.worker-*.json.tmp-PID`, ...
    remove_stale_temporaries(output_dir)
    remove_stale_temporaries(build_dir)
    ours = False  # the shards in output_dir are known to come from this very build
    if os.path.exists(sidecar_path):
        previous = _read_json(sidecar_path)
        check_same_build(previous.get("build", {}), build, output_dir, sidecar_path)
        if _shards_intact(output_dir, previous, shard_names(build)):
            previous["already_complete"] = True
            return previous
        # Shards removed (or cut short) by hand: they are rebuilt, the sidecar goes first.
        os.remove(sidecar_path)
        ours = True
    if os.path.exists(plan_path):
        plan = _read_json(plan_path)
        if any(n.startswith("worker-") for n in os.listdir(build_dir)):
            # Some workers finished: their shards are only reusable by the same build.
            check_same_build(plan, build, output_dir, plan_path)
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
        write_json(plan_path, build)
    return None


def finished_result(job: WorkerJob, output_dir: str) -> Optional[dict]:
    """The statistics of a job a previous run finished, or None when it must run (again).

    Args:
        job: the worker's job.
        output_dir: the destination directory (a finished shard may already be there).
    """
    if not os.path.exists(job.marker_path()):
        return None
    result = _read_json(job.marker_path())
    for s in job.shards:
        name = shard_name(s, job.num_shards, job.compression)
        if not any(os.path.exists(os.path.join(d, name)) for d in (job.build_dir, output_dir)):
            return None
    return result


def publish(output_dir: str, sidecar: dict) -> None:
    """Moves every finished shard into `output_dir`, then writes the sidecar, last.

    Sets `sidecar["shard_bytes"]`: the size of each shard, in shard order, measured on the
    final (closed and renamed) files. The sidecar's bytes are written and flushed to disk
    under a temporary name before any shard moves, so a full disk here leaves the output
    directory as it was; renames need no space.

    Args:
        output_dir: the destination directory.
        sidecar: from `describe_sidecar`; `shard_bytes` is added to it.

    Raises:
        DataError: a finished shard is missing, or the sidecar cannot be written.
    """
    build_dir = os.path.join(output_dir, BUILD_DIR)
    sources = []
    for name in sidecar["shards"]:
        closed, final = os.path.join(build_dir, name), os.path.join(output_dir, name)
        source = closed if os.path.exists(closed) else final
        if not os.path.isfile(source):
            raise DataError(f"shard {name} of the build is missing from {build_dir} and "
                            f"{output_dir}; run the same command again to rebuild it")
        sources.append((source, final))
    sidecar["shard_bytes"] = [os.path.getsize(source) for source, _ in sources]
    sidecar_path = os.path.join(output_dir, SIDECAR_NAME)
    try:
        with atomic_write(sidecar_path) as f:
            json.dump(sidecar, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())  # A full disk fails here, before any shard moves.
            for source, final in sources:
                if source != final:
                    os.replace(source, final)
    except OSError as e:
        raise write_error(sidecar_path, e) from None
    shutil.rmtree(build_dir, ignore_errors=True)
