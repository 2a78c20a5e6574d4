"""tf.distribute strategy from flags, following Model Garden's `distribute_utils` conventions.

`make_strategy("mirrored", num_gpus=2)` is exactly
`official.common.distribute_utils.get_distribution_strategy`; the only addition is that a
`mirrored` strategy on a machine without GPUs spreads over all *logical* CPU devices (made with
`configure_cpu_devices`), which is how the tests prove the multi-device path on CPU (docs/architecture.md, "Facts about the stack").
"""

from __future__ import annotations

import os

import tensorflow as tf
from official.common import distribute_utils

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


class StrategyError(ValueError):
    """A strategy flag combination cannot be honoured (one-line message)."""


def configure_cpu_devices(count: int) -> None:
    """Splits the first physical CPU into `count` logical devices.

    Must run before TensorFlow initialises its devices (before any op runs), which is why
    the tests use it in a fresh subprocess.

    Args:
      count: number of logical CPU devices; 0 or 1 leaves the default single device.
    """
    if count <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        raise StrategyError(
            f"--num_cpu_devices={count}: TensorFlow devices are already initialised; set it "
            "before any TensorFlow op runs (start a fresh process)"
        ) from None


def make_strategy(
    name: str = "one_device",
    *,
    num_gpus: int = 0,
    all_reduce_alg: str | None = None,
    tpu_address: str | None = None,
) -> tf.distribute.Strategy:
    """Builds the tf.distribute strategy named by `--strategy`.

    Args:
      name: one of `STRATEGIES`.
      num_gpus: GPUs for `one_device`/`mirrored` (0 means CPU).
      all_reduce_alg: `nccl`/`hierarchical_copy` (mirrored) or `ring`/`nccl` (multi-worker).
      tpu_address: TPU name or grpc address for `tpu` ("" or "local" for a local TPU).
    """
    if name not in STRATEGIES:
        raise StrategyError(
            f"--strategy={name!r} is unknown; use one of {', '.join(STRATEGIES)}"
        )
    if name == "tpu" and tpu_address is None:
        tpu_address = ""
    if name == "mirrored" and num_gpus == 0:
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) > 1:
            # Model Garden would use CPU:0 only; logical CPU devices stand in for GPUs here.
            return tf.distribute.MirroredStrategy(
                devices=[d.name for d in cpus],
                cross_device_ops=tf.distribute.ReductionToOneDevice(),
            )
    if name == "multi_worker_mirrored" and not os.environ.get("TF_CONFIG"):
        # Without TF_CONFIG the strategy silently runs as a single worker; say so instead.
        raise StrategyError(
            "--strategy=multi_worker_mirrored needs the TF_CONFIG environment variable "
            "(cluster spec and this task); set it on every worker"
        )
    try:
        return distribute_utils.get_distribution_strategy(
            distribution_strategy=name,
            num_gpus=num_gpus,
            all_reduce_alg=all_reduce_alg,
            tpu_address=tpu_address,
        )
    except ValueError as e:
        raise StrategyError(f"--strategy={name}: {e}") from None


def worker_layout(strategy: tf.distribute.Strategy) -> dict:
    """Where this process sits in the cluster.

    Returns a dict: `is_chief` (writes logs, summaries and the kept checkpoints),
    `num_workers`, `worker_index` (0 is the chief) and `num_local_replicas`.

    Args:
      strategy: the strategy in use.
    """
    layout = {"is_chief": True, "num_workers": 1, "worker_index": 0,
              "num_local_replicas": strategy.num_replicas_in_sync}
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return layout
    spec = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    if not spec or task_type is None:
        return layout
    chiefs = len(spec.get("chief", []))
    num_workers = chiefs + len(spec.get("worker", []))
    worker_index = task_id if task_type == "chief" else chiefs + task_id
    layout.update(is_chief=worker_index == 0, num_workers=num_workers,
                  worker_index=worker_index,
                  num_local_replicas=strategy.num_replicas_in_sync // num_workers)
    return layout
