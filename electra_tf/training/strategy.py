"""tf.distribute strategy from flags, following Model Garden's `distribute_utils` conventions.

`make_strategy("mirrored", num_gpus=2)` is exactly
`official.common.distribute_utils.get_distribution_strategy`; the only addition is that a
`mirrored` strategy on a machine without GPUs spreads over all *logical* CPU devices (made with
`configure_cpu_devices`), which is how the tests prove the multi-device path on CPU (docs/architecture.md, "Facts about the stack").
"""

from __future__ import annotations

import json
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
    if name != "tpu" and num_gpus > 0:
        check_gpus(num_gpus)
    if name == "mirrored" and num_gpus == 0:
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) > 1:
            # Model Garden would use CPU:0 only; logical CPU devices stand in for GPUs here.
            return tf.distribute.MirroredStrategy(
                devices=[d.name for d in cpus],
                cross_device_ops=tf.distribute.ReductionToOneDevice(),
            )
    if name == "multi_worker_mirrored":
        if not os.environ.get("TF_CONFIG"):
            # Without TF_CONFIG the strategy silently runs as a single worker; say so instead.
            raise StrategyError(
                "--strategy=multi_worker_mirrored needs the TF_CONFIG environment variable "
                "(cluster spec and this task); set it on every worker"
            )
        check_tf_config(os.environ["TF_CONFIG"])
    try:
        return distribute_utils.get_distribution_strategy(
            distribution_strategy=name,
            num_gpus=num_gpus,
            all_reduce_alg=all_reduce_alg,
            tpu_address=tpu_address,
        )
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        text = str(getattr(e, "message", None) or e).strip().splitlines()
        raise StrategyError(f"--strategy={name}: {text[0] if text else type(e).__name__}"
                            ) from None


def check_gpus(num_gpus: int) -> None:
    """Refuses more GPUs than TensorFlow sees: a strategy over devices that do not exist
    logs them as if they did and then deadlocks at the first step.

    Args:
      num_gpus: `--num_gpus`.
    """
    visible = len(tf.config.list_physical_devices("GPU"))
    if num_gpus > visible:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = f" (CUDA_VISIBLE_DEVICES={env!r})" if env is not None else ""
        raise StrategyError(
            f"--num_gpus={num_gpus} but TensorFlow sees {visible} GPU"
            f"{'' if visible == 1 else 's'} on this machine{shown}; pass --num_gpus="
            f"{visible if visible else '0 to train on the CPU'}"
            + (" or fewer" if visible else ""))


_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def check_tf_config(text: str) -> dict:
    """Parses and checks the `TF_CONFIG` environment variable of a multi-worker run.

    TensorFlow's own errors for a malformed TF_CONFIG (a JSON decoder message, a KeyError)
    do not say which variable is wrong; these name it and the fix.

    Args:
      text: the variable's value.

    Returns:
      The parsed TF_CONFIG.

    Raises:
      StrategyError: one line naming TF_CONFIG, what is wrong and an example of the form.
    """
    def fail(problem):
        raise StrategyError(f"TF_CONFIG {problem}; set it on every worker to the form "
                            f"{_TF_CONFIG_EXAMPLE}")

    try:
        config = json.loads(text)
    except ValueError as e:
        fail(f"is not valid JSON ({getattr(e, 'msg', e)} at character "
             f"{getattr(e, 'pos', '?')})")
    if not isinstance(config, dict):
        fail(f"must be a JSON object, got {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        fail("has no \"cluster\" object (job name -> list of \"host:port\" addresses)")
    for job, addresses in cluster.items():
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and ":" in a for a in addresses)):
            fail(f"cluster.{job} must be a non-empty list of \"host:port\" strings, got "
                 f"{json.dumps(addresses)}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        fail("has no \"task\" object with \"type\" and \"index\" (which worker this "
             "process is)")
    if task["type"] not in cluster:
        fail(f"task.type={task['type']!r} is not a job of its cluster "
             f"({', '.join(map(str, cluster))})")
    index = task["index"]
    if not isinstance(index, int) or isinstance(index, bool) or \
            not 0 <= index < len(cluster[task["type"]]):
        fail(f"task.index={index!r} is not an index of cluster.{task['type']} (0.."
             f"{len(cluster[task['type']]) - 1})")
    return config


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
