"""The Beam executor's output directory, through `tf.io.gfile` (local, gs://, hdfs://):
readying it for a build, finding a finished but unpublished pipeline, and publishing.

Beam writes its shards and its report under `OUT/.build/beam/` (`STAGING_DIR`,
`REPORT_NAME`). A finished build of the same description is recognised, another build's
sidecar, unfinished local workers or foreign shards are refused (`prepare_output_dir`, as
`build_output.prepare_output_dir` for the local executor). When the pipeline has finished,
`publish` moves the shards into `OUT` under the local builder's names, measures them and
writes `dataset.json` last, with the local builder's fields (`build_plan.describe_sidecar`).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from typing import Optional, Sequence

import tensorflow as tf

from electra_tf.data import build_plan
from electra_tf.data.build_output import BUILD_DIR, PLAN_NAME
from electra_tf.data.pretraining_reader import (SHARD_PREFIX, SIDECAR_NAME, DataError,
                                                DataMismatchError)

# Under OUT/.build: Beam's output (its temporary files, then the finalized shards) and the
# pipeline's report.
STAGING_DIR = "beam"
REPORT_NAME = "report.json"
# Shards moved into place at once when publishing.
PUBLISH_THREADS = 16


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _write_json(path: str, data: dict) -> None:
    temporary = _join(path.rsplit("/", 1)[0], f".{_basename(path)}.tmp-{os.getpid()}")
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _read_json(path: str) -> dict:
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            data = json.loads(f.read())
    except (ValueError, tf.errors.OpError) as e:
        raise DataError(f"cannot read {path} ({e}): it is not this tool's JSON; delete it "
                        f"or use another --output_dir") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not this tool's JSON (not an object); delete it or use "
                        f"another --output_dir")
    return data


def _shards_intact(output_dir: str, sidecar: dict, names: Sequence[str]) -> bool:
    sizes = sidecar.get("shard_bytes")
    for i, name in enumerate(names):
        path = _join(output_dir, name)
        if not tf.io.gfile.exists(path):
            return False
        if isinstance(sizes, list) and len(sizes) == len(names) and \
                tf.io.gfile.stat(path).length != sizes[i]:
            return False
    return True


def prepare_output_dir(output_dir: str, build: dict) -> Optional[dict]:
    """`build_output.prepare_output_dir` through `tf.io.gfile`, for the Beam executor.

    A finished build of the same description is returned (with `already_complete`); another
    build's sidecar, another build's unfinished local workers or foreign shards are refused;
    an unfinished build of another description with nothing finished is discarded. On
    return `OUT/.build/build.json` holds this build's description. (Whether the directory
    can be written at all is checked before any work: `build_output.check_output_dir`.)

    Raises:
        DataMismatchError: `output_dir` holds shards of another build.
    """
    if "://" not in output_dir and os.path.isdir(output_dir):
        from electra_tf.files import remove_stale_temporaries

        remove_stale_temporaries(output_dir)  # What a killed run left (`.NAME.tmp-PID`).
    sidecar_path = _join(output_dir, SIDECAR_NAME)
    build_dir = _join(output_dir, BUILD_DIR)
    plan_path = _join(build_dir, PLAN_NAME)
    ours = False
    if tf.io.gfile.exists(sidecar_path):
        previous = _read_json(sidecar_path)
        build_plan.check_same_build(previous.get("build", {}), build, output_dir, sidecar_path)
        if _shards_intact(output_dir, previous, build_plan.shard_names(build)):
            previous["already_complete"] = True
            return previous
        tf.io.gfile.remove(sidecar_path)  # Shards removed or cut short: rebuilt.
        ours = True
    if tf.io.gfile.exists(plan_path):
        plan = _read_json(plan_path)
        if plan == build:
            ours = True
        elif any(name.startswith("worker-") for name in tf.io.gfile.listdir(build_dir)):
            build_plan.check_same_build(plan, build, output_dir, plan_path)
        else:
            tf.io.gfile.rmtree(build_dir)  # Another build that finished nothing: start afresh.
    if not ours and tf.io.gfile.isdir(output_dir):
        foreign = sorted(n for n in tf.io.gfile.listdir(output_dir) if n.startswith(SHARD_PREFIX))
        if foreign:
            raise DataMismatchError(
                f"{output_dir} holds shards ({foreign[0]}, ...) with no {SIDECAR_NAME} or "
                f"build plan of this tool; use another --output_dir or delete them")
    tf.io.gfile.makedirs(build_dir)
    if not tf.io.gfile.exists(plan_path):
        _write_json(plan_path, build)
    return None


def _finished_report(output_dir: str, build: dict) -> Optional[dict]:
    """The report of a pipeline that finished but was not published (all shards found)."""
    staging = _join(_join(output_dir, BUILD_DIR), STAGING_DIR)
    report_path = _join(staging, REPORT_NAME)
    if not tf.io.gfile.exists(report_path):
        return None
    for name in build_plan.shard_names(build):
        if not any(tf.io.gfile.exists(_join(d, name)) for d in (staging, output_dir)):
            return None
    return _read_json(report_path)


def publish(output_dir: str, build: dict, report: dict) -> dict:
    """Moves the staged shards into `output_dir`, measures them, writes the sidecar last.

    Returns:
        The sidecar written to `output_dir/dataset.json`.
    """
    build_dir = _join(output_dir, BUILD_DIR)
    staging = _join(build_dir, STAGING_DIR)
    names = build_plan.shard_names(build)
    # A rename is a copy and a delete on object stores: many at once.
    with concurrent.futures.ThreadPoolExecutor(PUBLISH_THREADS) as pool:
        sizes = list(pool.map(_move_and_measure, [_join(staging, n) for n in names],
                              [_join(output_dir, n) for n in names]))
    result = {"stats": report["stats"], "shards": report["examples_per_shard"]}
    sidecar = build_plan.describe_sidecar(build, {0: result}, _merge_skipped(report["skipped"]))
    sidecar["shard_bytes"] = sizes
    _write_json(_join(output_dir, SIDECAR_NAME), sidecar)
    tf.io.gfile.rmtree(build_dir)
    return sidecar


def _move_and_measure(source: str, final: str) -> int:
    """Moves a staged shard into place (unless a previous publish did); returns its size."""
    if tf.io.gfile.exists(source):
        tf.io.gfile.rename(source, final, overwrite=True)
    return tf.io.gfile.stat(final).length


def _merge_skipped(entries: Sequence[dict]) -> list[dict]:
    """One entry per skipped file (a split file fails in each of its units)."""
    merged: dict = {}
    for entry in entries:
        if entry["path"] in merged:
            merged[entry["path"]]["examples_kept"] += entry["examples_kept"]
        else:
            merged[entry["path"]] = dict(entry)
    return [merged[path] for path in sorted(merged)]

