"""The local server's web page: its assets, and a user's session in a real headless Chromium.

The browser tests drive Debian's ``chromium`` and ``chromium-driver`` with selenium (installed
by scripts/bootstrap.sh when missing) and save screenshots under ``$VSR_TEST_ARTIFACTS``
(default ``out/test-artifacts/``) for review of the page's look.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path

import pytest
import requests

from tests.api.media import ffprobe_video, small_video
from vsr_api.local.server import LocalApi, LocalServer
from vsr_api.local.web_assets import WEB_DIR, page_config, web_asset

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("VSR_TEST_ARTIFACTS", ROOT / "out" / "test-artifacts"))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Both canvases' sizes, the share of lit pixels in "after", and how much "before" differs from it.
CANVAS_STATS = """
const read = (id) => {
  const c = document.getElementById(id);
  return {w: c.width, h: c.height, px: c.getContext('2d').getImageData(0, 0, c.width, c.height).data};
};
const a = read('after'), b = read('before');
let lit = 0, diff = 0;
for (let i = 0; i < a.px.length; i += 4) {
  lit += a.px[i] + a.px[i + 1] + a.px[i + 2] > 30;
  diff += Math.abs(a.px[i] - b.px[i]);
}
return {aw: a.w, ah: a.h, bw: b.w, bh: b.h, lit: lit / (a.px.length / 4), diff};
"""


# -- the assets, without a browser ---------------------------------------------------------------


def test_page_and_assets_are_served_with_their_content_types() -> None:
    assert web_asset("/")[1] == "text/html; charset=utf-8"
    assert web_asset("/web/app.js")[1] == "text/javascript; charset=utf-8"
    assert web_asset("/web/style.css")[1] == "text/css; charset=utf-8"
    assert web_asset("/web/../settings.py") is None and web_asset("/web/.hidden") is None
    assert web_asset("/jobs") is None  # the API's own paths are not the page's


def test_page_loads_nothing_from_other_hosts() -> None:
    for path in WEB_DIR.iterdir():
        text = path.read_text()
        # Any absolute URL in src/href/url()/fetch/import would reach outside the server.
        external = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", text)
        assert external == [], f"{path.name} loads {external}"


def test_page_config_offers_the_servers_models_and_the_contracts_choices() -> None:
    config = page_config(["bicubic", "realesr-animevideov3"], "realesr-animevideov3", api_key_required=True)
    assert config["scales"] == [2, 4] and config["tasks"] == ["inference", "debug"]
    assert config["envs"] == ["spot", "onDemand"] and config["segment_time"] == 60
    assert config["models"] == ["bicubic", "realesr-animevideov3"] and config["api_key_required"] is True


# -- in a real browser ---------------------------------------------------------------------------


def _browser_missing() -> str:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "needs Debian's chromium and chromium-driver (scripts/bootstrap.sh installs them)"
    if importlib.util.find_spec("selenium") is None:
        return "needs selenium (requirements-dev.txt)"
    return ""


browser = pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing())


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1300"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    drv = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4", size="96x64")


def start_server(data: Path, api_key: str | None = None) -> LocalServer:
    srv = LocalServer(LocalApi(data, api_key=api_key, jobs=2), "127.0.0.1", 0)
    srv.start_background()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(tmp_path_factory.mktemp("data"))
    yield srv
    srv.close()


def wait_for(condition, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def choose(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def upload_and_press_upscale(driver, server: LocalServer, clip: Path, model: str, segment_time: str) -> str:
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#model option"), 10, "the page's choices")
    driver.find_element(By.ID, "file").send_keys(str(clip))
    choose(driver, "model", model)
    field = driver.find_element(By.ID, "segment-time")
    field.clear()
    field.send_keys(segment_time)
    driver.find_element(By.XPATH, "//button[normalize-space()='Upscale']").click()
    return wait_for(lambda: driver.find_element(By.ID, "job-id").text, 60, "the job to be submitted")


@browser
@pytest.mark.slow
def test_page_uploads_upscales_compares_and_downloads(driver, server: LocalServer, clip: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    job_id = upload_and_press_upscale(driver, server, clip, "bicubic", "1")
    state = wait_for(
        lambda: (s := driver.find_element(By.ID, "job-state").text) in ("succeeded", "failed", "cancelled") and s,
        180,
        "the job to end",
    )
    assert state == "succeeded", driver.find_element(By.ID, "job-failure").text
    upscale_text = driver.find_element(By.CSS_SELECTOR, 'li[data-stage="upscale"] .stage-text').text
    assert upscale_text == "succeeded · 2/2 segments · 50/50 frames"
    row_states = lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"] .state')]  # noqa: E731
    wait_for(lambda: row_states() == ["succeeded"], 15, "the job list's row")
    # The download link is the result: fetch it as the browser would and count its frames.
    href = driver.find_element(By.ID, "download").get_attribute("href")
    out = tmp_path / "result.mp4"
    out.write_bytes(requests.get(href, timeout=30).content)
    assert ffprobe_video(out) == {"width": 192, "height": 128, "frames": 50}
    # Before/after: both canvases hold the same-sized frame, and the two differ (x2 vs the browser's scaling).
    wait_for(lambda: driver.execute_script("return document.body.dataset.compare") == "drawn", 60, "the comparison")
    stats = driver.execute_script(CANVAS_STATS)
    assert (stats["aw"], stats["ah"], stats["bw"], stats["bh"]) == (192, 128, 192, 128)
    assert stats["lit"] > 0.5 and stats["diff"] > 0
    screenshot(driver, "web-page-succeeded")
    driver.set_window_size(420, 1300)  # a phone's width: one column
    try:
        left = [driver.find_element(By.ID, i).rect["x"] for i in ("new-job", "job-title", "jobs-title")]
        assert max(left) - min(left) < 2
        screenshot(driver, "web-page-narrow")
    finally:
        driver.set_window_size(1280, 1300)


@browser
def test_page_cancels_a_running_job(driver, server: LocalServer, clip: Path) -> None:
    from selenium.webdriver.common.by import By

    upload_and_press_upscale(driver, server, clip, "realesr-animevideov3", "60")  # slow enough to cancel
    cancel = wait_for(lambda: (b := driver.find_element(By.ID, "cancel")).is_displayed() and b, 30, "Cancel")
    cancel.click()
    wait_for(lambda: driver.find_element(By.ID, "job-state").text == "cancelled", 30, "the job to be cancelled")
    assert not driver.find_element(By.ID, "download").is_displayed()


@browser
def test_page_asks_for_the_api_key_and_keeps_it_only_in_the_tab(driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    srv = start_server(tmp_path / "data", api_key="s3cret")
    try:
        driver.get(srv.url + "/")
        panel = wait_for(lambda: (p := driver.find_element(By.ID, "key-panel")).is_displayed() and p, 10, "the prompt")
        assert not driver.find_element(By.ID, "main").is_displayed()
        screenshot(driver, "web-page-api-key")
        key = driver.find_element(By.ID, "api-key")
        key.send_keys("wrong")
        key.submit()
        error = driver.find_element(By.ID, "key-error")
        wait_for(lambda: error.is_displayed() and "x-api-key" in error.text, 10, "the wrong key's error")
        key.clear()
        key.send_keys("s3cret")
        key.submit()
        wait_for(lambda: driver.find_element(By.ID, "main").is_displayed(), 10, "the page")
        assert not panel.is_displayed()
        assert driver.find_element(By.ID, "jobs-empty").text == "No jobs yet."
        stored = driver.execute_script("return [sessionStorage.getItem('vsr-api-key'), localStorage.length]")
        assert stored == ["s3cret", 0]
    finally:
        driver.execute_script("sessionStorage.clear()")
        srv.close()
