"""Training over several devices or workers with TensorFlow's own engines (``distribute=``): the strategy
the GAN is built under, which process records the run, and what each replica's share of a step is.

``none``: one device. ``mirrored``: ``tf.distribute.MirroredStrategy``, a replica per device of this
process. ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, one process per worker, the
cluster read from ``$TF_CONFIG``. ``train.batch_size`` is the global batch, split evenly over the replicas;
each replica's loss is its share of the global mean, so the summed gradients are the global batch's.
Light to import: TensorFlow is imported where a strategy or a step needs it.
"""

import json
import os

from omegaconf import DictConfig

from gan_lab.config import ConfigError, Strategy

TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


def cluster_task() -> tuple[dict, dict]:
    """``$TF_CONFIG``'s cluster (``{task type: [host:port, ...]}``) and this process's task (``type``, ``index``)."""
    fix = (f"set it in each worker's environment, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' with that worker's "
           "index (README: Several devices and workers)")
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(f"distribute=multi_worker: $TF_CONFIG is not set; {fix}")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"distribute=multi_worker: $TF_CONFIG is not JSON ({err}); {fix}") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not (isinstance(cluster, dict) and isinstance(task, dict) and task.get("type") in cluster
            and isinstance(task.get("index"), int) and 0 <= task["index"] < len(cluster[task["type"]])):
        raise ConfigError(f"distribute=multi_worker: $TF_CONFIG={raw} needs a cluster (task type: list of "
                          f"host:port) and this process's task, a type of the cluster and an index into its list; {fix}")
    return cluster, task


def is_chief(cfg: DictConfig) -> bool:
    """Whether this process records the run (MLflow, files, checkpoints, judge): the only process, or in
    multi-worker training the chief, the task of type ``chief`` or else worker 0."""
    if cfg.strategy != Strategy.multi_worker:
        return True
    cluster, task = cluster_task()
    return task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0 and "chief" not in cluster)


def make_strategy(cfg: DictConfig, batch_size: int):
    """The ``tf.distribute`` strategy of ``distribute`` config ``cfg`` (TensorFlow's default for ``none``).
    Multi-worker training must build it before TensorFlow runs anything else."""
    import tensorflow as tf

    if cfg.strategy == Strategy.none:
        return tf.distribute.get_strategy()
    if cfg.strategy == Strategy.mirrored:
        strategy = tf.distribute.MirroredStrategy(list(cfg.devices) if cfg.devices else None)
    else:
        cluster_task()  # a clear error before TensorFlow's own
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ConfigError(f"train.batch_size={batch_size}: the global batch must split evenly over the {replicas} "
                          f"replicas; use a multiple of {replicas}")
    return strategy


def fused_steps(strategy, steps_per_execution: int) -> int:
    """Train steps per compiled call under ``strategy``: one with several replicas, where Keras 3's fused
    loop calls the replicas' step inside a ``tf.cond`` that their merge calls break ("You must feed a value
    for placeholder tensor", keras-team/keras#19246, still in Keras 3.15)."""
    return 1 if strategy.num_replicas_in_sync > 1 else steps_per_execution


def _replica_context():
    """The replica context of a step on several replicas in sync, else None (one device, or outside a step)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def replica_share(loss):
    """This replica's share of the global batch's mean loss (``loss`` over its own batch / replicas): the
    optimizers sum the replicas' gradients. ``loss`` itself on one device."""
    context = _replica_context()
    return loss if context is None else loss / context.num_replicas_in_sync


def replica_seed(seed):
    """A stateless seed (shape [2]) made this replica's own on several replicas, so that replicas, which
    share the RNG state, draw different noise and masks for their parts of the batch; ``seed`` on one device."""
    import tensorflow as tf

    context = _replica_context()
    return seed if context is None else tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)


def step_results(results: dict) -> dict:
    """A train step's results for Keras to reduce over the replicas: scalars, but shape [1] on the workers of a
    multi-worker strategy, whose results Keras 3.15 reduces along axis 0 ("Invalid reduction dimension 0")."""
    import tensorflow as tf

    context = _replica_context()
    if context is None or not (isinstance(context.strategy, tf.distribute.MultiWorkerMirroredStrategy)
                               and context.strategy.extended._in_multi_worker_mode()):
        return results
    return {name: tf.reshape(value, [1]) for name, value in results.items()}


def sum_over_replicas(values):
    """``values`` (a structure of tensors) summed over the replicas in sync; unchanged on one device."""
    import tensorflow as tf

    context = _replica_context()
    return values if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, values)
