"""Browser-test fixtures: `streamlit run app/main.py` on a free port against a tmp runs directory, and a
headless Debian Chromium driven by Playwright.

The server is a subprocess stopped through its own Popen handle. Screenshots and the server's log go to
test-artifacts/ (gitignored) so CI can keep them. The tests are skipped only when /usr/bin/chromium is
absent (Playwright's own browser downloads are never used).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SERVER_START_S = 180.0   # the first start imports torch; on a loaded 2-core machine that can take a minute
SERVER_STOP_S = 20.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            return r.read().decode().strip() == "ok"
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def e2e_runs(tmp_path_factory) -> Path:
    """The runs directory of the server under test (DARTBOARD_RUNS)."""
    return tmp_path_factory.mktemp("e2e") / "runs"


@pytest.fixture(scope="session")
def server(e2e_runs: Path, artifacts: Path) -> Iterator[str]:
    """The dashboard's URL; one server for every browser test of the session."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    e2e_runs.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://localhost:{port}"
    log_path = e2e_runs.parent / "server.log"
    env = {**os.environ, "DARTBOARD_RUNS": str(e2e_runs), "OMP_NUM_THREADS": "1",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    cmd = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
           "--server.port", str(port), "--server.fileWatcherType", "none"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode} before it was healthy:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {SERVER_START_S:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=SERVER_STOP_S)
        shutil.copyfile(log_path, artifacts / "e2e-server.log")


@pytest.fixture(scope="session")
def browser(server: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# Installed in every page: the page-clock time of each websocket message the page sends ("out": a rerun
# request) and receives ("in"), so a test can wait for the rerun its own action caused.
WS_LOG_JS = """(() => {
  const Native = window.WebSocket;
  window.__ws = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => window.__ws.push([performance.now(), 'in']));
    }
    send(data) { window.__ws.push([performance.now(), 'out']); return super.send(data); }
  };
})();"""


@pytest.fixture
def page(browser):
    """A fresh browser context (a new Streamlit session) with a tall viewport, so screenshots show the
    panels below the status strip (Streamlit scrolls an inner container, so full-page shots do not)."""
    context = browser.new_context(viewport={"width": 1400, "height": 2200}, accept_downloads=True)
    context.add_init_script(WS_LOG_JS)
    pg = context.new_page()
    yield pg
    context.close()
