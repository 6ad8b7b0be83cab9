"""The UI path, headless: the launch mutation the UI's buttons send runs a tiny demo study (prepare,
every training-set partition, evaluation), and a screenshot of the asset graph in headless Chromium
shows the stages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from synergy_dagster_tests.runconfig import overrides_env

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TINY_STUDY = (
    "profile=demo",
    "virtual.pixels=200",
    "virtual.basins=60",
    "training.epochs=1",
    "budget.max_updates=20",  # the demo's converge budget, kept tiny
    "budget.min_updates=20",
    "budget.eval_every=10",
)
TINY = {"SYNERGY_STUDY": "virtual", **overrides_env(*TINY_STUDY), "SYNERGY_EXECUTOR": "in_process"}
# The run coordinator the UI's button goes through, minus the daemon: launch immediately.
DIRECT_LAUNCH = """run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DIRECT_LAUNCH)
    return home


def test_graphql_launches_materialise_the_demo_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.instance.ref import InstanceRef
    from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
    from dagster_graphql.test.utils import (
        define_out_of_process_context,
        execute_dagster_graphql,
        infer_job_selector,
    )

    study = overrides_env(
        *TINY_STUDY,
        "run.domains=[soil_moisture]",
        "thresholds.min_sites_subregion=20",
        "thresholds.min_sites_roi=8",
    )
    for k, v in {**TINY, **study, "SYNERGY_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(k, v)  # inherited by the code server and the run it launches
    home = _home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        with define_out_of_process_context(str(ROOT / "workspace.yaml"), None, instance) as ctx:

            def launch(job: str, partition: str | None = None) -> str:
                params: dict = {"selector": infer_job_selector(ctx, job), "mode": "default"}
                if partition:
                    params["executionMetadata"] = {"tags": [{"key": "dagster/partition", "value": partition}]}
                result = execute_dagster_graphql(
                    ctx, LAUNCH_PIPELINE_EXECUTION_MUTATION, variables={"executionParams": params}
                )
                launched = result.data["launchPipelineExecution"]
                assert launched["__typename"] == "LaunchRunSuccess", launched
                run_id = launched["run"]["runId"]
                deadline = time.monotonic() + 240
                while not instance.get_run_by_id(run_id).is_finished and time.monotonic() < deadline:
                    time.sleep(0.5)
                run = instance.get_run_by_id(run_id)
                if run.status != dg.DagsterRunStatus.SUCCESS:
                    failures = [
                        e.message
                        for e in instance.all_logs(run_id)
                        if e.is_dagster_event and e.dagster_event.is_failure
                    ][:3]
                    pytest.fail(f"{job} [{partition}] via GraphQL ended {run.status}: {failures}")
                status = execute_dagster_graphql(
                    ctx,
                    "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                    variables={"id": run_id},
                )
                assert status.data["runOrError"]["status"] == "SUCCESS"
                return run_id

            # The whole (tiny) study, as the UI's buttons launch it: prepare, every training-set
            # partition, then the evaluation.
            launch("prepare_job")
            keys = instance.get_dynamic_partitions("soil_moisture_sets")
            assert "global:CONUS" in keys and len(keys) >= 3, keys
            for key in keys:
                launch("train_soil_moisture_job", key)
            launch("evaluation_job")
        data = tmp_path / "data"
        # only the run's domain is planned (SYNERGY_DOMAINS=soil_moisture)
        assert (data / "plans" / "soil_moisture.json").exists()
        assert not (data / "plans" / "streamflow.json").exists()
        assert (data / "evaluation" / "summary.md").read_text().count("soil_moisture") > 0
        done = {
            k.to_user_string()
            for k in instance.get_asset_keys()
            if instance.get_latest_materialization_event(k)
        }
        assert {"raw_basins", "streamflow_sites", "soil_moisture_model", "significance", "summary"} <= done
    finally:
        instance.dispose()


# ---------------------------------------------------------------- screenshot of the asset graph


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def webserver(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        **TINY,
        "DAGSTER_HOME": str(_home(tmp_path)),
        "SYNERGY_DATA_DIR": str(tmp_path / "data"),
    }
    exe = Path(sys.executable).parent / "dagster-webserver"
    log = (tmp_path / "webserver.log").open("w")
    # Its own session (setsid) so the whole process group (webserver + code server) can be stopped.
    proc = subprocess.Popen(
        [str(exe), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"webserver did not start: {(tmp_path / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_asset_graph_screenshot_in_headless_chromium(webserver: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip("no /usr/bin/chromium (apt-get install chromium chromium-driver); CI must have it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    groups = ("sources", "regions", "training_sets", "models", "evaluation")
    try:
        driver.set_page_load_timeout(90)
        driver.get(f"{webserver}/asset-groups")
        # The global lineage graph: one box per stage group once the code location has loaded.
        WebDriverWait(driver, 120, poll_frequency=1).until(
            lambda d: all(g in d.find_element(By.TAG_NAME, "body").text for g in groups)
        )
        for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            button.click()  # the first-visit "join the community" dialog covers the graph
        time.sleep(2)  # let the layout settle before the picture
        png = tmp_path / "asset_graph.png"
        assert driver.save_screenshot(str(png))
        # One group's own graph shows its assets by name.
        driver.get(f"{webserver}/locations/synergy_dagster.defs.definitions/asset-groups/sources")
        WebDriverWait(driver, 90, poll_frequency=1).until(lambda d: "raw_basins" in d.page_source)
        source = driver.page_source
        assert driver.save_screenshot(str(tmp_path / "sources_group.png"))
    finally:
        driver.quit()
    for name in ("raw_basins", "raw_pixels", "source_files"):
        assert name in source
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    grey = img[..., :3].mean(axis=2)
    # Non-trivial: not one flat colour, and a good share of the pixels differ from the background.
    assert float(np.std(grey)) > 0.02
    background = np.median(grey)
    assert float(np.mean(np.abs(grey - background) > 0.05)) > 0.01
    print(f"screenshot {png} ({png.stat().st_size} bytes)")
