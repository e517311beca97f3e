"""Every model's logged generator loads wherever a user loads it: in a fresh Python, first with plain MLflow
(gan_lab not imported), then through ``generate``, ``evaluate``, ``register`` and ``generate model_uri=``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gan_lab.trainer import train
from .conftest import ROOT

MODELS = {  # every model in its default composition, and the conditional MLP twin
    "selfcond": ["model=selfcond"], "mlp": ["model=mlp"], "dcgan": ["model=dcgan"], "cgan": ["model=cgan"],
    "infogan": ["model=infogan"], "tfgan": ["model=tfgan"], "mlp_twin": ["model=mlp", "model.num_classes=10"],
}

# Run in a fresh interpreter: argv = tracking URI, output folder, JSON {name: [run id, num_classes, latent size]},
# then the judge overrides. Prints one JSON report {name: {step: result or "error: ..."}}.
FRESH_PROCESS = r"""
import json, sys, traceback
import numpy as np
import mlflow

uri, out, runs, judge = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
mlflow.set_tracking_uri(uri)
report = {name: {} for name in runs}

def step(name, what, call):
    try:
        report[name][what] = call()
    except BaseException as err:
        report[name][what] = "error: " + traceback.format_exception_only(err)[-1].strip()

def plain_load(run_id, num_classes, inputs):
    generator = mlflow.keras.load_model(f"runs:/{run_id}/generator")
    noise = np.random.default_rng(0).standard_normal((4, inputs)).astype("float32")
    if not num_classes:
        return {"shape": list(generator(noise).shape)}
    images = [np.asarray(generator([noise, np.full(4, d, "int32")], training=False)) for d in (1, 7)]
    return {"shape": list(images[0].shape), "label_changes_image": bool(np.abs(images[0] - images[1]).max() > 0)}

for name, (run_id, num_classes, inputs) in runs.items():
    step(name, "plain_load", lambda: plain_load(run_id, num_classes, inputs))
report["gan_lab_imported_before_commands"] = "gan_lab" in sys.modules

from gan_lab import evaluate, generate, register

for name, (run_id, num_classes, _) in runs.items():
    store = f"mlflow.tracking_uri={uri}"
    labels = ["labels=[3]"] if num_classes else []
    step(name, "generate", lambda: generate.main([f"run_id={run_id}", "n=12", f"out={out}/{name}/run", store]))
    step(name, "evaluate", lambda: evaluate.main([f"run_id={run_id}", "n=200", store, *judge]))
    step(name, "register", lambda: register.main([f"run_id={run_id}", f"name=export-{name}", "alias=champion", store]))
    step(name, "generate_model_uri", lambda: generate.main(
        [f"model_uri=models:/export-{name}@champion", "n=12", f"out={out}/{name}/model", *labels, store]))
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def fresh_process_report(tiny_train_cfg, mlflow_uri, judge_overrides, tmp_path_factory):
    """Train each model a few steps, then load and use its generator in one fresh Python process."""
    runs = {}
    for name, overrides in MODELS.items():
        cfg = tiny_train_cfg(*overrides)
        run_id = train(cfg, output_dir=tmp_path_factory.mktemp(name))
        runs[name] = [run_id, cfg.model.get("num_classes", 0), cfg.model.latent_dim + cfg.model.get("code_dim", 0)]
    out = tmp_path_factory.mktemp("exported")
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, mlflow_uri, str(out), json.dumps(runs), *judge_overrides],
                          cwd=out, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("REPORT ")), out


def test_plain_mlflow_load_needs_no_gan_lab_import(fresh_process_report):
    report, _ = fresh_process_report
    assert report["gan_lab_imported_before_commands"] is False


@pytest.mark.parametrize("name", list(MODELS))
def test_logged_generator_loads_and_serves_in_a_fresh_process(fresh_process_report, name):
    report, out = fresh_process_report
    steps = report[name]
    conditional = name in ("cgan", "mlp_twin")
    assert steps["plain_load"]["shape"] == [4, 28, 28, 1], steps
    if conditional:
        assert steps["plain_load"]["label_changes_image"], steps
    assert {what: steps[what] for what in ("generate", "evaluate", "register", "generate_model_uri")} == {
        "generate": 0, "evaluate": 0, "register": 0, "generate_model_uri": 0}, steps
    for source in ("run", "model"):
        with np.load(out / name / source / "samples.npz") as samples:
            assert samples["images"].shape == (12, 28, 28) and samples["images"].dtype == np.uint8
            if conditional:
                expected = list(range(10)) + [0, 1] if source == "run" else [3] * 12
                assert samples["labels"].tolist() == expected
            else:
                assert "labels" not in samples.files
