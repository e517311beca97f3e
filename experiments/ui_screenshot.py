"""The README's screenshot of a sweep in the MLflow UI (experiments/ui_sweep.png), taken as the browser test
takes its own: `python -m gan_lab.runs ui` over a store, headless Debian Chromium, the newest sweep's
parent row expanded.

    python experiments/ui_screenshot.py --store sqlite:///mlflow.db [--out experiments/ui_sweep.png]
"""

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_ui import RUN_NAME, SHOTS, Page, free_port  # noqa: E402  (the browser test's page helpers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "ui_sweep.png"))
    args = parser.parse_args()
    SHOTS.mkdir(parents=True, exist_ok=True)  # where a failed wait leaves its screenshot
    client = MlflowClient(args.store)
    experiment = client.get_experiment_by_name("gan_lab")
    parent = client.search_runs([experiment.experiment_id], "tags.`gan_lab.kind` = 'sweep'",
                                order_by=["attributes.start_time DESC"], max_results=1)[0]
    port = free_port()
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "ui.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "gan_lab.runs", "ui", f"port={port}",
                                   f"mlflow.tracking_uri={args.store}"], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(240):
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"{base}/health", timeout=2)
                    break
                time.sleep(0.5)
            address = re.search(r"  gan_lab: (\S+)", (Path(folder) / "ui.log").read_text()).group(1)
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service

            os.environ["SE_OFFLINE"] = "true"
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1600,1000",
                         f"--user-data-dir={folder}/profile"):
                options.add_argument(flag)
            page = Page(webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options))
            try:
                page.open(address)
                page.wait(lambda: page.cell(parent.info.run_id, "metrics.`fid`"), "the sweep's parent row")
                page.close_assistant()
                page.driver.find_element("css selector", f".ag-pinned-left-cols-container .ag-row[row-id="
                                         f"'{parent.info.run_id}'] [col-id='{RUN_NAME}'] button").click()
                time.sleep(3)
                shot = Path(folder) / "shot.png"
                page.driver.save_screenshot(str(shot))
            finally:
                page.driver.quit()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        picture = Image.open(shot)
        picture = picture.crop((0, 0, picture.width, 470))
        picture = picture.resize((1100, round(470 * 1100 / picture.width)), Image.LANCZOS)
        picture.convert("P", palette=Image.ADAPTIVE, colors=64).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
