"""TensorFlow's distribution engines: a mirrored step equals the single-device step (two logical CPUs), and
multi-worker training with two real worker processes records one run, from the chief only."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from gan_lab.checkpoints import resume_config
from gan_lab.config import ConfigError, Strategy, compose_config
from gan_lab.distribute import is_chief

from .conftest import ROOT, start_cli

STEPS = 2  # in one fused call (train.steps_per_execution=2)
BATCH = 16  # global: 8 per replica


def mirrored_and_plain_steps(out: str) -> None:
    """In a fresh process (logical devices precede TensorFlow's start): the same mlp GAN (float32, EMA on) built
    on one device and under a MirroredStrategy over two logical CPUs, from the same weights, fitted ``STEPS``
    steps on the same global batch with the same noise (replica r takes its rows of one global noise batch,
    as the single device takes all of them); their variables, logs and checkpoints into ``out`` (.npz)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from gan_lab.checkpoints import Checkpoints
    from gan_lab.distribute import make_strategy
    from gan_lab.gan import GAN
    from gan_lab.trainer import build_gan

    cfg = compose_config(["model=mlp", "train.precision=float32", "train.ema=0.9", f"train.steps_per_execution={STEPS}",
                          "distribute=mirrored", "distribute.devices=[/cpu:0,/cpu:1]"])
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (BATCH, 28, 28, 1)).astype("float32")
    noise = rng.uniform(-1, 1, (BATCH, cfg.model.latent_dim)).astype("float32")
    drawn_inputs = GAN._generator_inputs

    def fixed_inputs(self, batch_size):  # this replica's rows of the global noise batch
        rows = tf.slice(noise, [tf.distribute.get_replica_context().replica_id_in_sync_group * batch_size, 0],
                        [batch_size, -1])
        return rows, rows, None, None

    strategy = make_strategy(cfg.distribute, BATCH)
    plain, mirrored = build_gan(cfg), build_gan(cfg, strategy=strategy)
    for network in ("generator", "discriminator", "ema_generator"):
        getattr(mirrored, network).set_weights(getattr(plain, network).get_weights())
    results = {"replicas": strategy.num_replicas_in_sync}
    GAN._generator_inputs = fixed_inputs
    for name, gan in (("plain", plain), ("mirrored", mirrored)):
        data = tf.data.Dataset.from_tensors((images, np.zeros(BATCH, "int32"))).repeat()
        logs = gan.fit(data, epochs=1, steps_per_epoch=STEPS, verbose=0).history
        results |= {f"{name}/log/{key}": value[-1] for key, value in logs.items()}
        for network in ("generator", "discriminator", "ema_generator"):
            for i, weight in enumerate(getattr(gan, network).weights):
                results[f"{name}/{network}/{i}"] = weight.numpy()
        results[f"{name}/steps"] = gan.train_steps
    GAN._generator_inputs = drawn_inputs

    # checkpoints: the mirrored state restores on one device and the single-device state under the strategy
    for source, target in ((mirrored, build_gan(cfg)), (plain, build_gan(cfg, strategy=strategy))):
        folder = f"{out}.{source.distribute_strategy.num_replicas_in_sync}"
        Checkpoints(folder, source.training_state(), keep=1).save(STEPS)
        Checkpoints(folder, target.training_state(), keep=1).restore_latest()
        results[f"restored_equal/{folder[-1]}"] = all(
            np.array_equal(a.numpy(), b.numpy()) for a, b in zip(source.training_state(), target.training_state()))
    # each replica draws its own noise for its part of the batch
    per_replica = strategy.run(tf.function(lambda: drawn_inputs(mirrored, 4)[1]))
    results["replica_noise"] = np.stack([x.numpy() for x in strategy.experimental_local_results(per_replica)])
    np.savez(out, **results)


def test_a_mirrored_step_equals_the_single_device_step(tmp_path):
    out = tmp_path / "steps.npz"
    code = f"from tests.test_distribute import mirrored_and_plain_steps; mirrored_and_plain_steps({str(out)!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as results:
        results = dict(results)
    assert results["replicas"] == 2 and results["plain/steps"] == results["mirrored/steps"] == STEPS
    names = [key.removeprefix("plain/") for key in results if key.startswith("plain/") and key != "plain/steps"]
    assert len(names) > 20
    for name in names:  # weights of G, D and the EMA generator, and the epoch's mean losses and accuracies
        np.testing.assert_allclose(results[f"mirrored/{name}"], results[f"plain/{name}"], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert not np.allclose(results["plain/generator/0"], results["plain/ema_generator/0"])  # the step moved G
    assert results["restored_equal/2"] and results["restored_equal/1"]
    first, second = results["replica_noise"]
    assert first.shape == (4, 96) and not np.allclose(first, second)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_one_run_recorded_by_the_chief(mnist_dir, mlflow_uri, judge_overrides, tmp_path):
    """Two worker processes on localhost ports train together; the chief (worker 0) alone logs the run, writes
    the files and keeps the checkpoints; the other's checkpoint saves leave nothing behind."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    args = ["distribute=multi_worker", "model=mlp", "data.split=test", "train.max_steps=4", "train.batch_size=32",
            "checkpoint.every=2", f"mlflow.tracking_uri={mlflow_uri}", "mlflow.experiment=multi_worker",
            *judge_overrides]
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TMPDIR": str(scratch)}
        workers.append(start_cli([*args, f"hydra.run.dir={tmp_path / f'worker{index}'}"], tmp_path, mnist_dir, env=env))
    deadline = time.monotonic() + 240
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            pytest.fail("the workers did not finish: " + "\n".join(w.stderr.read()[-2000:] for w in workers))
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]

    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("multi_worker").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["train_steps"] == 4 and "score" in runs[0].data.metrics
    assert runs[0].data.tags["output_dir"] == str((tmp_path / "worker0").resolve())
    assert {p.name for p in (tmp_path / "worker0" / "checkpoints").iterdir()} >= {"checkpoint", "ckpt-2.index", "ckpt-4.index"}
    assert not (tmp_path / "worker1" / "checkpoints").exists() and not (tmp_path / "worker1" / "run.json").exists()
    assert list((tmp_path / "tmp1").iterdir()) == []  # the worker's checkpoint saves, deleted
    assert "the chief has recorded the run" in outputs[1][0]


@pytest.mark.parametrize(("tf_config", "message"), [
    (None, "$TF_CONFIG is not set"),
    ("{cluster", "$TF_CONFIG is not JSON"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "needs a cluster"),
])
def test_multi_worker_needs_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match=message.replace("$", r"\$")):
        is_chief(compose_config(["distribute=multi_worker"]).distribute)


def test_a_resumed_run_may_change_its_engine(tmp_path):
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(compose_config(["model=mlp"]), resolve=True))
    overrides = ["distribute=mirrored", "distribute.devices=[/gpu:0,/gpu:1]"]
    resumed = resume_config(tmp_path, compose_config(["model=mlp", *overrides]), ["resume=x", *overrides])
    assert resumed.distribute.strategy == Strategy.mirrored and list(resumed.distribute.devices) == ["/gpu:0", "/gpu:1"]
