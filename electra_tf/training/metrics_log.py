"""`model_dir/metrics.jsonl` and TensorBoard scalars: what a training run reports.

One JSON object per line (`split`, `step`, losses, rates ...). Each line is flushed and fsynced
as it is written, so a crash loses at most the line being written; a torn last line (a crash
mid-write) is dropped on the next open. On resume, lines past the restored checkpoint step are
dropped so that the steps re-run after a crash are not reported twice.
"""

from __future__ import annotations

import json
import math
import os

import tensorflow as tf

from electra_tf.files import atomic_write


class MetricsLog:
    """Appends metric records to `metrics.jsonl` and TensorBoard (chief only).

    Args:
      model_dir: the run's directory; `metrics.jsonl`, `train/` and `eval/` event files go here.
      enabled: False on non-chief workers: every method is then a no-op.
    """

    def __init__(self, model_dir: str, *, enabled: bool = True):
        self.path = os.path.join(model_dir, "metrics.jsonl")
        self.enabled = enabled
        self._writers = {}
        self._model_dir = model_dir

    def truncate_after(self, step: int) -> None:
        """Keeps only complete lines whose step is <= `step` (atomic rewrite).

        Args:
          step: the step the run restarts from (0 for a fresh run).
        """
        if not self.enabled or not os.path.exists(self.path):
            return
        kept = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a crash mid-write
                if isinstance(record, dict) and record.get("step", 0) <= step:
                    kept.append(json.dumps(record) + "\n")
        with atomic_write(self.path) as f:
            f.writelines(kept)

    def write(self, record: dict) -> None:
        """Appends one record (needs `split` and `step`) and its TensorBoard scalars.

        Args:
          record: flat mapping of JSON-serialisable values; floats may be nan/inf (written as
            JSON null so that every line stays valid JSON).
        """
        if not self.enabled:
            return
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()
            os.fsync(f.fileno())
        split = record["split"]
        writer = self._writers.get(split)
        if writer is None:
            writer = tf.summary.create_file_writer(os.path.join(self._model_dir, split))
            self._writers[split] = writer
        with writer.as_default(step=int(record["step"])):
            for key, value in record.items():
                if key not in ("split", "step") and isinstance(value, (int, float)):
                    tf.summary.scalar(key, value)
        writer.flush()

    def close(self) -> None:
        """Closes the TensorBoard writers."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def read_metrics(model_dir: str, split: str | None = None) -> list[dict]:
    """Reads `metrics.jsonl` (optionally one split) as a list of dicts.

    Args:
      model_dir: the run's directory.
      split: "train" or "eval", or None for all lines.
    """
    path = os.path.join(model_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if split is None or r.get("split") == split]
