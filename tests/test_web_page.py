"""The local server's web page and API reference: served beside the API, and a user's session in
a real headless Chromium.

The browser tests drive Debian's ``chromium`` and ``chromium-driver`` with selenium (installed
by scripts/bootstrap.sh when missing), with every host name but the loopback ones unresolvable,
and save screenshots under ``$VSR_TEST_ARTIFACTS`` (default ``out/test-artifacts/``) for review
of the page's look.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from openapi_spec_validator import validate

from tests.api.media import ffprobe_video, small_video
from vsr_api.local.server import LocalApi, LocalServer
from vsr_api.local.web_assets import WEB_DIR, page_config
from vsr_client.openapi import build_openapi

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


def start_server(data: Path, api_key: str | None = None) -> LocalServer:
    srv = LocalServer(LocalApi(data, api_key=api_key, jobs=2), "127.0.0.1", 0)
    srv.start_background()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(tmp_path_factory.mktemp("data"))
    yield srv
    srv.close()


@pytest.fixture
def keyed_server(tmp_path: Path):
    srv = start_server(tmp_path / "data", api_key="s3cret")
    yield srv
    srv.close()


# -- over HTTP, without a browser ----------------------------------------------------------------


def test_the_page_its_assets_and_the_docs_are_public_while_the_api_needs_its_key(keyed_server: LocalServer) -> None:
    expected = {
        "/": "text/html; charset=utf-8",
        "/web/app.js": "text/javascript; charset=utf-8",
        "/web/style.css": "text/css; charset=utf-8",
        "/web/config.json": "application/json",
        "/docs": "text/html; charset=utf-8",
        "/docs/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "/docs/swagger-ui.css": "text/css; charset=utf-8",
        "/openapi.json": "application/json",
    }
    for path, content_type in expected.items():
        response = requests.get(keyed_server.url + path, timeout=10)
        assert (response.status_code, response.headers["content-type"]) == (200, content_type), path
    page = requests.get(keyed_server.url + "/", timeout=10)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert requests.get(keyed_server.url + "/web/config.json", timeout=10).json()["api_key_required"] is True
    assert requests.get(keyed_server.url + "/jobs", timeout=10).status_code == 401
    assert requests.get(keyed_server.url + "/jobs", headers={"x-api-key": "s3cret"}, timeout=10).status_code == 200


def test_only_the_pages_own_files_are_served(server: LocalServer) -> None:
    for path in (
        "/web/nope.js",
        "/web/.hidden",
        "/web/docs",
        "/docs/swagger-ui-bundle.js.map",
        "/docs/oauth2-redirect.html",
    ):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 404 and response.json()["error"]["code"] == "route_not_found", path


def test_a_path_the_page_shares_with_the_api_answers_each_method_from_its_owner(server: LocalServer) -> None:
    assert requests.get(server.url + "/", timeout=10).headers["content-type"].startswith("text/html")
    # POST / is still the seed's submit (the API's own error for an empty body).
    submit = requests.post(server.url + "/", json={}, timeout=10)
    assert (submit.status_code, submit.json()["error"]["code"]) == (400, "missing_key")
    for method, path, allow in [("PUT", "/", "GET, HEAD, POST"), ("POST", "/web/app.js", "GET, HEAD"),
                                ("DELETE", "/docs", "GET, HEAD"), ("POST", "/openapi.json", "GET, HEAD")]:  # fmt: skip
        response = requests.request(method, server.url + path, timeout=10)
        assert response.status_code == 405 and response.headers["allow"] == allow, (method, path)
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_openapi_json_is_the_generated_document_naming_the_host_asked(server: LocalServer) -> None:
    port = urlsplit(server.url).port
    document = requests.get(f"http://localhost:{port}/openapi.json", timeout=10).json()
    validate(document)
    assert document == build_openapi(server_url=f"http://localhost:{port}")


def test_page_loads_nothing_from_other_hosts() -> None:
    for path in [*WEB_DIR.iterdir(), *(WEB_DIR / "docs").iterdir()]:
        if path.is_dir():
            continue
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
# vsr.test: a name that is not a loopback one (as a LAN host name would be), mapped to 127.0.0.1.
LOCAL_NAME = "vsr.test"
ON_THIS_MACHINE = {"127.0.0.1", "localhost", "[::1]", LOCAL_NAME}


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1300",
        # Offline by construction: no host name resolves but the loopback ones (and LOCAL_NAME).
        f"--host-resolver-rules=MAP {LOCAL_NAME} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    # Every request the pages make (DevTools' Network events) and the console (CSP refusals).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def network(driver) -> list[dict]:
    """The Network events since the last call (the log is emptied by reading it)."""
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    return [e for e in events if e["method"].startswith("Network.")]


def requests_elsewhere(events: list[dict]) -> list[str]:
    urls = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    return [
        u
        for u in urls
        if urlsplit(u).scheme in ("http", "https", "ws", "wss")
        and urlsplit(u).netloc.rsplit(":", 1)[0] not in ON_THIS_MACHINE
    ]


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4", size="96x64")


def wait_for(condition, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
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


def upload_and_press_upscale(
    driver, page_url: str, clip: Path, model: str, segment_time: str, idle_screenshot: str = ""
) -> str:
    from selenium.webdriver.common.by import By

    driver.get(page_url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#model option"), 10, "the page's choices")
    driver.find_element(By.ID, "file").send_keys(str(clip))
    choose(driver, "model", model)
    field = driver.find_element(By.ID, "segment-time")
    field.clear()
    field.send_keys(segment_time)
    if idle_screenshot:
        screenshot(driver, idle_screenshot)
    driver.find_element(By.XPATH, "//button[normalize-space()='Upscale']").click()
    return wait_for(lambda: driver.find_element(By.ID, "job-id").text, 60, "the job to be submitted")


def job_state(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "job-state").text


@browser
@pytest.mark.slow
def test_page_uploads_upscales_compares_and_downloads(driver, server: LocalServer, clip: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    # Opened by another name than the one the server printed: the page's URLs must follow it.
    page = f"http://localhost:{urlsplit(server.url).port}/"
    network(driver)
    job_id = upload_and_press_upscale(driver, page, clip, "bicubic", "1", idle_screenshot="web-page-idle")
    state = wait_for(lambda: (s := job_state(driver)) in ("succeeded", "failed", "cancelled") and s, 180, "the end")
    assert state == "succeeded", driver.find_element(By.ID, "job-failure").text
    upscale_text = driver.find_element(By.CSS_SELECTOR, 'li[data-stage="upscale"] .stage-text').text
    assert upscale_text == "succeeded · 2/2 segments · 50/50 frames"
    row_states = lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"] .state')]  # noqa: E731
    wait_for(lambda: row_states() == ["succeeded"], 15, "the job list's row")
    # The download link is the result, on the page's own origin: fetch it and count its frames.
    href = driver.find_element(By.ID, "download").get_attribute("href")
    assert href.startswith(page + "files/"), href
    out = tmp_path / "result.mp4"
    out.write_bytes(requests.get(href, timeout=30).content)
    assert ffprobe_video(out) == {"width": 192, "height": 128, "frames": 50}
    # Before/after: both canvases hold the same-sized frame, and the two differ (x2 vs the
    # browser's scaling). Reading the pixels back works only if the result is same-origin.
    wait_for(lambda: driver.execute_script("return document.body.dataset.compare") == "drawn", 60, "the comparison")
    stats = driver.execute_script(CANVAS_STATS)
    assert (stats["aw"], stats["ah"], stats["bw"], stats["bh"]) == (192, 128, 192, 128)
    assert stats["lit"] > 0.5 and stats["diff"] > 0
    screenshot(driver, "web-page-succeeded")
    assert requests_elsewhere(network(driver)) == [] and console_errors(driver) == []
    driver.set_window_size(420, 1300)  # a phone's width: one column
    try:
        left = [driver.find_element(By.ID, i).rect["x"] for i in ("new-job", "job-title", "jobs-title")]
        assert max(left) - min(left) < 2
        screenshot(driver, "web-page-narrow")
    finally:
        driver.set_window_size(1280, 1300)


@browser
def test_page_shows_a_running_jobs_progress_and_cancels_it(driver, server: LocalServer, clip: Path) -> None:
    from selenium.webdriver.common.by import By

    upload_and_press_upscale(driver, server.url + "/", clip, "realesr-animevideov3", "60")  # slow enough to cancel
    cancel = wait_for(lambda: (b := driver.find_element(By.ID, "cancel")).is_displayed() and b, 30, "Cancel")
    wait_for(lambda: job_state(driver) == "running", 30, "the job to run")
    screenshot(driver, "web-page-running")
    cancel.click()
    wait_for(lambda: job_state(driver) == "cancelled", 30, "the job to be cancelled")
    assert not driver.find_element(By.ID, "download").is_displayed()
    assert not driver.find_element(By.ID, "cancel").is_displayed()


@browser
def test_page_asks_for_the_api_key_and_keeps_it_only_in_the_tab(driver, keyed_server: LocalServer) -> None:
    from selenium.webdriver.common.by import By

    try:
        driver.get(keyed_server.url + "/")
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


@browser
def test_the_api_reference_renders_offline_and_lists_every_operation(driver, keyed_server: LocalServer) -> None:
    from selenium.webdriver.common.by import By

    network(driver)
    driver.get_log("browser")
    # By a name that is not loopback's: Swagger UI's defaults would then fetch a validator badge.
    # (Only a server with an API key answers such a name; the docs need no key.)
    driver.get(f"http://{LOCAL_NAME}:{urlsplit(keyed_server.url).port}/docs")
    wait_for(lambda: driver.execute_script("return document.body.dataset.docs") == "rendered", 30, "Swagger UI")
    blocks = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".opblock"), 10, "the operations")
    shown = {
        (b.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
         b.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"))
        for b in blocks
    }  # fmt: skip
    documented = {(method.upper(), path) for path, ops in build_openapi()["paths"].items() for method in ops}
    assert shown == documented
    screenshot(driver, "api-docs")
    events = network(driver)
    assert requests_elsewhere(events) == [] and console_errors(driver) == []
    loaded = {
        urlsplit(e["params"]["request"]["url"]).path for e in events if e["method"] == "Network.requestWillBeSent"
    }
    assert {"/docs", "/docs/swagger-ui-bundle.js", "/openapi.json"} <= loaded


@browser
def test_a_page_rebound_to_loopback_cannot_read_an_open_server(driver, server: LocalServer, clip: Path) -> None:
    # DNS rebinding as a browser does it: LOCAL_NAME resolves to 127.0.0.1, so a page served
    # under that name is "same origin" with the server; the server refuses that Host.
    driver.get(f"http://{LOCAL_NAME}:{urlsplit(server.url).port}/")
    assert driver.execute_script("return fetch('/jobs').then(r => r.status)") == 403
    body = json.loads(driver.execute_script("return fetch('/jobs').then(r => r.text())"))
    assert body["error"]["code"] == "host_not_allowed"
    # Nor can that page (or any other site) make the open server work by a "simple" cross-site
    # POST (text/plain: no preflight; the response is opaque, but the request would be served).
    shutil.copy(clip, server.api.data_dir / "csrf.mp4")

    def job_ids() -> set[str]:  # ids only: each record's signed download_url changes every second
        return {job["job_id"] for job in requests.get(server.url + "/jobs", timeout=10).json()["jobs"]}

    before = job_ids()
    sent = driver.execute_async_script(
        """const [url, done] = arguments;
        fetch(url, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'},
                    body: JSON.stringify({key: 'csrf.mp4', model: 'bicubic'})})
          .then(r => done(r.type), e => done(String(e)));""",
        f"http://127.0.0.1:{urlsplit(server.url).port}/",
    )
    assert sent == "opaque"  # it went out
    assert job_ids() == before  # and started nothing
    # The same browser, by a loopback name, is served.
    driver.get(f"http://127.0.0.1:{urlsplit(server.url).port}/")
    assert driver.execute_script("return fetch('/jobs').then(r => r.status)") == 200


SEEK = """
const [url, at, done] = arguments;
const video = document.createElement('video');
video.muted = true;
video.preload = 'metadata';
video.onerror = () => done({error: video.error ? video.error.message || String(video.error.code) : 'error'});
video.addEventListener('loadedmetadata', () => {
  video.addEventListener('seeked', () => done({
    time: video.currentTime, duration: video.duration,
    seekable: video.seekable.length ? [video.seekable.start(0), video.seekable.end(0)] : [],
  }), {once: true});
  video.currentTime = at;
}, {once: true});
video.src = url;
document.body.append(video);
"""


@browser
def test_a_video_element_seeks_in_a_download(driver, server: LocalServer) -> None:
    key = "seek/clip.mp4"
    (server.api.data_dir / "seek").mkdir(exist_ok=True)
    small_video(server.api.data_dir / key, seconds=6, size="160x120")
    driver.get(server.url + "/")
    network(driver)
    driver.set_script_timeout(30)
    url = server.api.storage.download_url(key)
    seeked = driver.execute_async_script(SEEK, url, 4.5)
    assert "error" not in seeked, seeked
    assert abs(seeked["time"] - 4.5) < 0.05 and seeked["duration"] == pytest.approx(6, abs=0.1)
    assert seeked["seekable"] == [0, seeked["duration"]]  # the browser found the file seekable
    statuses = [
        e["params"]["response"]["status"]
        for e in network(driver)
        if e["method"] == "Network.responseReceived" and e["params"]["response"]["url"] == url
    ]
    assert 206 in statuses, statuses
