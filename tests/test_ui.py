"""The MLflow UI as a user sees it: `python -m gan_lab.runs ui` (what `make ui` runs) over a store
holding real sweeps, driven in headless Chromium (Debian's chromium and chromium-driver, never a
downloaded browser); and the sqlite store holding up while the UI server reads it."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import ROOT, run_cli

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SHOTS = ROOT / "outputs" / "ui"
TIMEOUT = 60  # the first page load fetches ~10 MB of JavaScript on two slow cores
RUN_NAME = "attributes.`Run Name`"
TINY = ["model=mlp", "data.split=test", "train.epochs=1", "train.max_steps=6", "train.batch_size=32"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mnist_dir, judge_overrides):
    """A store holding a real tiny sweep of three jobs: (folder, store URI, parent run, child runs)."""
    folder = tmp_path_factory.mktemp("browsed")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    result = run_cli(["-m", "optimizer.lr=1e-4,2e-4,4e-4", *TINY, f"hydra.sweep.dir={folder / 'three'}",
                      *judge_overrides], folder, mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store)
    parent = client.get_run(json.loads((folder / "three" / "sweep.json").read_text())["parent_run_id"])
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return folder, store, parent, children


@pytest.fixture(scope="module")
def server(sweep):
    """`python -m gan_lab.runs ui` (what `make ui` runs) on a free port over that store: (base URL, its output)."""
    folder, store, _, _ = sweep
    port = free_port()
    log = folder / "ui.log"
    with log.open("w") as output:  # its own session: the server's worker processes are stopped with it
        process = subprocess.Popen([sys.executable, "-m", "gan_lab.runs", "ui", f"port={port}", f"mlflow.tracking_uri={store}"],
                                   cwd=folder, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, f"the MLflow UI did not start: {log.read_text()}"
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    yield base, log.read_text()
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(20)


class Browsing(threading.Thread):
    """Reads the store through the UI server's REST API, as the runs page does, until stopped."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.stop, self.requests, self.errors = base, threading.Event(), 0, []

    def call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}/ajax-api/2.0/mlflow/{path}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            self.requests += 1
            return json.loads(response.read() or b"{}")

    def run(self):
        while not self.stop.is_set():
            try:
                experiments = self.call("experiments/search", {"max_results": 100}).get("experiments", [])
                ids = [e["experiment_id"] for e in experiments]
                for run in self.call("runs/search", {"experiment_ids": ids, "max_results": 100}).get("runs", [])[:3]:
                    run_id = run["info"]["run_id"]
                    self.call(f"metrics/get-history?run_id={run_id}&metric_key=d_loss")
                    self.call(f"artifacts/list?run_id={run_id}")
            except Exception as err:  # noqa: BLE001  (recorded, asserted on)
                self.errors.append(repr(err))
            time.sleep(0.2)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        message = "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('profile')}",
                 "--window-size=1600,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield Page(driver)
    driver.quit()


class Page:
    """The MLflow 3.17 single-page app: ag-grid runs table, plotly charts, image cards."""

    def __init__(self, driver):
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition, what: str):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        try:  # React re-renders: an element found a moment ago may be gone
            return WebDriverWait(self.driver, TIMEOUT, poll_frequency=0.25, ignored_exceptions=[
                StaleElementReferenceException]).until(lambda _: condition(), message=what)
        except Exception:
            self.shot("failed")
            raise

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def close_assistant(self) -> None:
        """The MLflow Assistant panel opens by itself on a first visit and covers a third of the page."""
        self.js("document.querySelectorAll(\"button[data-component-id='mlflow.assistant.chat_panel.close']\")"
                ".forEach(b => b.offsetParent && b.click())")

    def rows(self) -> list[dict]:
        """The runs table's rows in order: run id, name, and whether it has an expand button."""
        return self.js("""return [...document.querySelectorAll('.ag-pinned-left-cols-container .ag-row[row-id]')]
            .sort((a, b) => a.getAttribute('row-index') - b.getAttribute('row-index'))
            .map(r => ({id: r.getAttribute('row-id'), name: (r.querySelector('[col-id="%s"] a') || {}).textContent,
                        expander: !!r.querySelector('[col-id="%s"] button')}))""" % (RUN_NAME, RUN_NAME))

    def cell(self, run_id: str, column: str) -> str | None:
        return self.js("return document.querySelector(arguments[0])?.innerText",
                       f".ag-center-cols-container .ag-row[row-id='{run_id}'] [col-id='{column}']")

    CARD = """[...document.querySelectorAll("[data-testid='experiment-view-compare-runs-card']")]
        .find(card => card.innerText.split('\\n')[0].trim() === arguments[0])"""  # the card titled arguments[0]

    def card(self, title: str):
        """The chart card of a run's Model metrics tab whose title is ``title``, found as a user does: by
        typing it into the charts' search box (the cards are virtualised: off-screen ones are not in the page)."""
        from selenium.webdriver.common.keys import Keys

        search = self.driver.find_element("css selector", "input[placeholder='Search metric charts']")
        search.send_keys(Keys.CONTROL, "a")
        search.send_keys(Keys.DELETE, title)
        return self.wait(lambda: self.js(f"return {self.CARD} || null", title), f"the {title} chart")

    def card_shows(self, title: str, what: str) -> int:
        """How many loaded images (``img``) or plotted traces (``trace``) the card ``title`` shows now."""
        return self.js(f"const card = {self.CARD};" + """
            if (!card) return 0;
            if (arguments[1] === 'img') return [...card.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length;
            return card.querySelectorAll(".js-plotly-plot svg.main-svg .scatterlayer .trace").length""", title, what)

    def loaded_images(self, element=None) -> list[str]:
        """Sources of the images in ``element`` (default: the page) that have loaded (natural width > 0)."""
        return self.js("return [...(arguments[0] || document).querySelectorAll('img')]"
                       ".filter(i => i.complete && i.naturalWidth > 0).map(i => i.src)", element)


def test_a_sweep_in_the_browser(sweep, server, browser):
    _, _, parent, children = sweep
    base, printed = server
    experiment, page = parent.info.experiment_id, browser

    # `make ui` prints the address of each experiment's runs table, and a new user opens it
    address = re.search(r"  gan_lab: (\S+)", printed).group(1)
    assert address == f"{base}/#/experiments/{experiment}/runs?viewStateShareKey=gan_lab&workflowType=machine_learning"
    page.open(address)
    page.wait(lambda: any(row["id"] == parent.info.run_id for row in page.rows()), "the sweep's parent row")
    page.close_assistant()
    page.wait(lambda: page.cell(parent.info.run_id, "metrics.`fid`"), "gan_lab's metric columns (saved view)")
    assert float(page.cell(parent.info.run_id, "metrics.`fid`")) == pytest.approx(parent.data.metrics["fid"], rel=1e-2)
    parent_row = next(row for row in page.rows() if row["id"] == parent.info.run_id)
    assert parent_row["name"] == parent.info.run_name and parent_row["expander"]
    assert not {c.info.run_id for c in children} & {row["id"] for row in page.rows()}  # folded under the parent

    page.driver.find_element("css selector", f".ag-pinned-left-cols-container .ag-row[row-id='{parent.info.run_id}'] "
                                             f"[col-id='{RUN_NAME}'] button").click()
    page.wait(lambda: {c.info.run_id for c in children} <= {row["id"] for row in page.rows()}, "the three children")
    rows = [row["id"] for row in page.rows()]
    position = rows.index(parent.info.run_id)
    assert set(rows[position + 1 : position + 4]) == {c.info.run_id for c in children}  # right under their parent
    page.shot("sweep_runs_table")

    # the parent's summary figure
    page.open(f"{base}/#/experiments/{experiment}/runs/{parent.info.run_id}/artifacts/summary/metrics_vs_optimizer.lr.png")
    page.wait(lambda: any(src.startswith("blob:") for src in page.loaded_images()), "the summary figure")
    page.shot("sweep_summary_figure")

    # a child's sample grid, label histogram and loss charts, on its Model metrics tab
    child = children[0].info.run_id
    page.open(f"{base}/#/experiments/{experiment}/runs/{child}/model-metrics?workflowType=machine_learning")
    page.wait(lambda: page.driver.find_elements("css selector", "input[placeholder='Search metric charts']"), "the charts")
    page.close_assistant()
    for metric in ("d_loss", "g_loss"):  # a run of one epoch: one point per curve
        page.card(metric)
        page.wait(lambda: page.card_shows(metric, "trace"), f"the {metric} curve")
    page.shot("child_loss_chart")
    for key in ("samples", "label_histogram"):
        page.card(key)
        page.wait(lambda: page.card_shows(key, "img"), f"the {key} image")
    page.shot("child_label_histogram")


def test_the_store_holds_up_while_browsed(sweep, server, mnist_dir, judge_overrides):
    """A four-job parallel sweep (+sweep=lr, joblib) while the UI server reads the same sqlite store."""
    folder, store, _, _ = sweep
    base, _ = server
    browsing = Browsing(base)
    browsing.start()
    try:
        result = run_cli(["-m", "+sweep=lr", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY,
                          f"hydra.sweep.dir={folder / 'lr'}", *judge_overrides], folder, mnist_dir)
    finally:
        browsing.stop.set()
        browsing.join()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "locked" not in result.stderr and browsing.requests > 20 and browsing.errors == []
    client = MlflowClient(store)
    parent = client.get_run(json.loads((folder / "lr" / "sweep.json").read_text())["parent_run_id"])
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.params["optimizer.generator.lr"] for c in children) == ["0.0001", "0.0002", "0.0004", "0.0008"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"d_loss", "g_loss", "d_acc_real", "d_acc_fake", "score", "fid", "precision", "recall",
                "train_steps", "train_seconds"} <= set(child.data.metrics)
        top = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.yaml", "grid.png", "loss_curve.png", "samples", "images", "judge"} <= top
        assert len(client.list_artifacts(child.info.run_id, "samples")) == 100
    assert parent.info.status == "FINISHED" and "summary/sample_grids.png" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
