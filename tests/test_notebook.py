"""experiments/walkthrough.ipynb runs end to end (on a tiny config, into a temporary folder), so it never goes stale."""

import subprocess

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .conftest import ROOT

NOTEBOOK = ROOT / "experiments" / "walkthrough.ipynb"


def repo_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert all(not cell.get("outputs") and not cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code")


def test_the_walkthrough_runs_end_to_end(mnist_dir, judge_overrides, tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import gan_lab; print(gan_lab.__file__)"))
    environment = {  # the kernel inherits it: this checkout's gan_lab (without .pyc files in it), the data, the knobs
        "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "GAN_LAB_DATA_DIR": str(mnist_dir),
        "WALKTHROUGH_DIR": str(tmp_path), "WALKTHROUGH_STEPS": "40", "WALKTHROUGH_JUDGE_SAMPLES": "300",
        "WALKTHROUGH_OVERRIDES": " ".join(["train.batch_size=32", *judge_overrides])}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    before = repo_status() if (ROOT / ".git").exists() else None
    try:
        NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    except CellExecutionError as err:
        pytest.fail(f"{NOTEBOOK.name} failed:\n{str(err)[-3000:]}")

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in outputs)
    assert f"{ROOT / 'gan_lab' / '__init__.py'}" in text  # the kernel imported this checkout's gan_lab
    run_id = next(output.data["text/plain"].strip("'") for output in outputs if output.output_type == "execute_result")
    assert len(run_id) == 32 and f"runs/{run_id}" in text
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 5  # grids per epoch and the final one, the loss curve, the label histogram, the generated grid
    for name in ("images/samples+step+1+", "grid.png", "loss_curve.png", "images/label_histogram+step+", "(100, 28, 28) uint8"):
        assert name in text, name
    assert (tmp_path / "mlflow.db").is_file()
    if before is not None:
        assert repo_status() == before  # it wrote nothing into the checkout
