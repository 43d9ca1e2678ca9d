"""What watching a search in the browser costs: steps/s with the dashboard open (live panel at the app's
default refresh, app/screens/search.py) against the same search with no browser attached, plus what the live
ticks and one step's redraw cost and how fast the page answers a click while the search runs.

    python bench/dashboard_overhead.py [--epochs 100] [--window-s 30] [--repeats 3] [--threads 1]
                                       [--idle-s 20] [--server-option runner.postScriptGC=true ...]

One `streamlit run` server (app/.streamlit/config.toml, plus any --server-option), one search
started from its page (the `demo` preset with more epochs, stopped at the end), measured in alternating
windows (headless, browser, browser, headless, ...). In a browser window a headless Chromium shows the
Search page; in a headless window no session is open and the server only runs the search. Steps/s of a
window come from the step end times in metrics.jsonl, so both modes are the same process, run and model,
and a busy machine slows both alike. Each window also splits the CPU: the search thread, the rest of the
server (live-panel reruns, serialisation, Streamlit's garbage collection after each rerun) and Chromium.

Then, with the page open: Pause / Resume / Derive now clicks, timed in the page from the click to what it
shows (pause_visible_s: the State box says "pausing" or "paused"; pause_state_shown_s: "paused", after the
loop finishes its step), and an idle window on the paused search (ticks that find nothing new). Last, the
live panel's script alone, timed under streamlit.testing's AppTest.

Needs Debian's Chromium at /usr/bin/chromium and Linux /proc. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.screens.search import DEFAULT_REFRESH_S  # noqa: E402
from engine.runs import catalog, rundir  # noqa: E402
from engine.search.benchmark import machine_info  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PRESET = "demo"
REFRESH_S = DEFAULT_REFRESH_S   # the live panel's default, from the app
TARGET = 0.95
PAUSE_VISIBLE_S = 1.5           # goal: a Pause shows on screen ("pausing", then "paused") this soon after the click
SETTLE_S = 4.0    # left out at the start of each window: page load, or the closed session going away
TICK = os.sysconf("SC_CLK_TCK")

# Installed in every page: the page-clock time of each websocket message sent and received, so a live
# refresh can be timed from its rerun request to the last message of the answer.
_WS_LOG_JS = """(() => {
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

# Armed before a click: records, in the page's clock, the click and when each wanted answer first shows.
# A target is ["metric", label, value or [values]] (an st.metric showing one of them) or ["toast", text] (a new
# toast).
_ARM_JS = """targets => {
  const t = window.__t = {click: null, done: targets.map(() => null)};
  if (window.__onClick) document.removeEventListener('click', window.__onClick, true);
  window.__onClick = () => { if (t.click === null) t.click = performance.now(); };
  document.addEventListener('click', window.__onClick, true);
  const seen = '[data-testid=stToast], [data-testid=stMarkdownContainer]';
  document.querySelectorAll(seen).forEach(e => { e.dataset.benchSeen = '1'; e.dataset.benchText = e.innerText; });
  const shows = target => {
    if (target[0] === 'toast')
      return Array.from(document.querySelectorAll('[data-testid=stToast]'))
        .some(e => !e.dataset.benchSeen && e.innerText.includes(target[1]));
    if (target[0] === 'text')  // a new piece of text on the page (the derived cell's heading)
      return Array.from(document.querySelectorAll('[data-testid=stMarkdownContainer]'))
        .some(e => e.innerText.includes(target[1]) && (!e.dataset.benchSeen || e.innerText !== e.dataset.benchText));
    return Array.from(document.querySelectorAll('[data-testid=stMetric]')).some(m => {
      const l = m.querySelector('[data-testid=stMetricLabel]'), v = m.querySelector('[data-testid=stMetricValue]');
      return l && v && l.innerText.trim() === target[1] && [].concat(target[2]).includes(v.innerText.trim());
    });
  };
  const obs = new MutationObserver(() => {
    if (t.click === null) return;
    targets.forEach((target, i) => { if (t.done[i] === null && shows(target)) t.done[i] = performance.now(); });
    if (t.done.every(x => x !== null)) obs.disconnect();
  });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


# ---------------------------------------------------------------- processes and CPU (Linux /proc)
def _stat(path: str) -> list[str]:
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_s(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads, dead ones included) or of one thread."""
    try:
        f = _stat(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat")
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / TICK


def busiest_thread(pid: int, over_s: float = 2.0) -> int:
    """The thread that uses the most CPU over the next `over_s` seconds (the search thread, while it runs)."""
    before = {int(t): cpu_s(pid, int(t)) for t in os.listdir(f"/proc/{pid}/task")}
    time.sleep(over_s)
    return max(before, key=lambda t: cpu_s(pid, t) - before[t])


def descendants(root: int, exclude: int) -> list[int]:
    """Every process under `root` except the subtree of `exclude` (here: Chromium under this bench)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(f"/proc/{entry}/stat")[1]), []).append(int(entry))
            except OSError:
                continue
    out, todo = [], [c for c in children.get(root, []) if c != exclude]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


class CpuMeter:
    """CPU seconds of the search thread, the rest of the server, and Chromium, between start() and stop()."""

    def __init__(self, server_pid: int, search_tid: int):
        self.server, self.search = server_pid, search_tid

    def _now(self) -> tuple[float, float, float]:
        search = cpu_s(self.server, self.search)
        chromium = sum(cpu_s(p) for p in descendants(os.getpid(), exclude=self.server))
        return search, cpu_s(self.server) - search, chromium

    def start(self) -> None:
        self.t0, self.c0 = time.perf_counter(), self._now()

    def stop(self) -> dict[str, float]:
        dt = time.perf_counter() - self.t0
        c1 = self._now()
        return {k: round((b - a) / dt, 3) for k, a, b in zip(("search_thread", "server_other", "chromium"),
                                                            self.c0, c1, strict=True)}


# ---------------------------------------------------------------- server and page
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            return r.read().strip() == b"ok"
    except (urllib.error.URLError, OSError):
        return False


def start_server(runs: Path, threads: int, options: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "DARTBOARD_RUNS": str(runs), "OMP_NUM_THREADS": str(threads),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    extra = [arg for opt in options for arg in (f"--{opt.split('=', 1)[0]}", opt.split("=", 1)[1])]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
                                 "--server.port", str(port), "--server.fileWatcherType", "none", *extra],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 180
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"streamlit did not start; its log:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def metric(page, label: str):
    label_el = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=label_el).get_by_test_id("stMetricValue")


def control(page, name: str):
    return page.locator(f".st-key-control-{name} button:visible")


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.add_init_script(_WS_LOG_JS)
    page = context.new_page()
    page.goto(url)
    return context, page


def open_search_page(browser, url: str):
    from playwright.sync_api import expect

    context, page = open_page(browser, url)
    expect(metric(page, "State")).to_have_text("running", timeout=120_000)
    # 2 heatmaps, 3 curves, 2 collapse indicators, 2 cell costs
    expect(page.locator("[data-testid=stVegaLiteChart]:visible")).to_have_count(9, timeout=120_000)
    return context, page


def open_stage_page(browser, url: str, run_id: str):
    """The Stage page (app/screens/stage.py) on the running search, at the projector size it is made for."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script(_WS_LOG_JS)
    page = context.new_page()
    page.goto(f"{url}/stage?run={run_id}")
    expect(page.locator(".stage-item[data-stage=state] .stage-value")).to_have_text("running", timeout=120_000)
    # 2 heatmaps, 2 curves
    expect(page.locator("[data-testid=stVegaLiteChart]:visible")).to_have_count(4, timeout=120_000)
    return context, page


def open_view(browser, url: str, view: str, run_dir: Path):
    return open_stage_page(browser, url, run_dir.name) if view == "stage" else open_search_page(browser, url)


def start_search(browser, url: str, runs: Path, epochs: int) -> Path:
    from playwright.sync_api import expect

    context, page = open_page(browser, url)
    start = page.get_by_role("button", name="Start search")
    expect(start).to_be_enabled(timeout=120_000)
    box = page.locator(f".st-key-setup-{PRESET}-epochs input:visible")
    sent = page.evaluate("window.__ws.length")
    box.fill(str(epochs))
    box.press("Enter")
    expect(box).to_have_value(str(epochs))
    # Start's config is the one of the page's last finished run: wait for the rerun Enter caused to be answered
    # (on a loaded machine the script state can still read notRunning before that rerun has begun)
    page.wait_for_function("""k => {
        const w = window.__ws.slice(k), o = w.findIndex(e => e[1] === 'out');
        const replies = o < 0 ? [] : w.slice(o + 1).filter(e => e[1] === 'in');
        const state = document.querySelector('[data-testid=stApp]').dataset.testScriptState;
        return replies.length > 0 && state === 'notRunning' && performance.now() - w[w.length - 1][0] > 300;
    }""", arg=sent, timeout=120_000, polling=100)
    start.click()
    expect(metric(page, "State")).to_have_text("running", timeout=120_000)
    context.close()
    run_dir = catalog.list_runs(runs)[0].path
    if rundir.read_config(run_dir)["config"]["epochs"] != epochs:
        raise SystemExit("the search started with another epochs value than the one typed in the sidebar")
    return run_dir


def refreshes(ws_log: list[list], since_ms: float) -> list[float]:
    """Seconds from each message the page sent (a rerun request) to the last message received before the
    next one: the wall time of one refresh as the page sees it."""
    out, start, last_in = [], None, None
    for t, kind in ws_log:
        if t < since_ms:
            continue
        if kind == "out":
            if start is not None and last_in is not None:
                out.append((last_in - start) / 1000)
            start, last_in = t, None
        elif start is not None:
            last_in = t
    return out


def window_rate(run_dir: Path, t0: float, t1: float) -> dict[str, Any]:
    """Steps/s of the steps that ended inside [t0, t1] (wall clock), from metrics.jsonl."""
    times = [r["time"] for r in rundir.read_metrics(run_dir) if t0 <= r.get("time", 0) <= t1]
    if len(times) < 3:
        raise SystemExit(f"only {len(times)} steps in a {t1 - t0:.0f} s window: raise --window-s")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return {"steps": len(times), "steps_per_s": round((len(times) - 1) / (times[-1] - times[0]), 4),
            "median_step_s": round(statistics.median(gaps), 4)}


# ---------------------------------------------------------------- clicks and the panel alone
def timed_click(page, name: str, targets: list[list[str]]) -> list[float]:
    """Seconds from the click on a control to each target showing in the page."""
    page.evaluate(_ARM_JS, targets)
    control(page, name).click()
    page.wait_for_function("() => window.__t.done.every(x => x !== null)", timeout=60_000, polling=100)
    t = page.evaluate("() => window.__t")
    return [round((d - t["click"]) / 1000, 3) for d in t["done"]]


def click_latencies(page, rounds: int) -> dict[str, list[float]]:
    from playwright.sync_api import expect

    out: dict[str, list[float]] = {"pause_answered_s": [], "derive_answered_s": [], "pause_visible_s": [],
                                   "pause_state_shown_s": [], "resume_state_shown_s": []}
    for _ in range(rounds):
        step = metric(page, "Step").inner_text()
        expect(metric(page, "Step")).not_to_have_text(step, timeout=60_000)  # a step or two between rounds
        visible, shown = timed_click(page, "pause", [["metric", "State", ["pausing", "paused"]],
                                                     ["metric", "State", "paused"]])
        out["pause_answered_s"].append(visible)  # the click's own rerun turns the State box to "pausing"
        out["pause_visible_s"].append(visible)   # the State box says "pausing" (or already "paused")
        out["pause_state_shown_s"].append(shown)  # the loop has paused: it finishes its step first
        expect(control(page, "resume")).to_be_enabled(timeout=60_000)
        out["resume_state_shown_s"] += timed_click(page, "resume", [["metric", "State", "running"]])
        out["derive_answered_s"] += timed_click(page, "derive_now", [["text", "Derived now, at step"]])
    return out


def idle_window(page, meter: CpuMeter, seconds: float) -> dict[str, float]:
    """Pause the search and measure, with the page open, what the live ticks cost when nothing changes."""
    from playwright.sync_api import expect

    control(page, "pause").click()
    expect(metric(page, "State")).to_have_text("paused", timeout=120_000)
    page.wait_for_timeout(SETTLE_S * 1000)
    since_ms = page.evaluate("performance.now()")
    meter.start()
    page.wait_for_timeout(seconds * 1000)
    cpu = meter.stop()
    ticks = len(refreshes(page.evaluate("window.__ws"), since_ms))
    control(page, "resume").click()
    expect(metric(page, "State")).to_have_text("running", timeout=120_000)
    return {"seconds": seconds, "ticks": ticks, "server_other": cpu["server_other"], "chromium": cpu["chromium"],
            "chromium_cpu_s_per_tick": round(cpu["chromium"] * seconds / ticks, 4) if ticks else None,
            "server_cpu_s_per_tick": round(cpu["server_other"] * seconds / ticks, 4) if ticks else None}


def panel_script_s(run_dir: Path, runs: int) -> dict[str, Any]:
    """The live panel's script alone (status, controls, heatmaps, cells, curves, genotype, exports) under
    AppTest on the run's final snapshot: no websocket, no garbage collection after the run."""
    from streamlit.testing.v1 import AppTest

    def script(run_dir: str) -> None:
        import time

        import streamlit as st

        from app.panels import live
        from engine.runs.follow import snapshot_from_dir

        class Job:  # the panel reads snapshot() only; no request is made here
            def __init__(self, snap):
                self.snap = snap

            def snapshot(self):
                return self.snap

        snap = snapshot_from_dir(run_dir)
        t0, c0 = time.perf_counter(), time.thread_time()
        live.panel(Job(snap), snap)
        st.session_state["bench"] = (time.perf_counter() - t0, time.thread_time() - c0)

    at = AppTest.from_function(script, args=(str(run_dir),), default_timeout=120)
    at.run()  # warm: imports, the cached parameter count
    if at.exception:
        raise SystemExit(f"the live panel raised under AppTest: {at.exception}")
    wall, cpu = [], []
    for _ in range(runs):
        at.run()
        w, c = at.session_state["bench"]
        wall.append(w)
        cpu.append(c)
    return {"runs": runs, "wall_s_median": round(statistics.median(wall), 4),
            "thread_cpu_s_median": round(statistics.median(cpu), 4)}


# ---------------------------------------------------------------- main
def _loadavg() -> float:
    return os.getloadavg()[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=100, help="epochs of the demo search (it is stopped at the end)")
    p.add_argument("--window-s", type=float, default=30.0, help="length of each measuring window")
    p.add_argument("--repeats", type=int, default=3, help="pairs of windows (orders alternate: HB, BH, HB, ...)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the server (torch threads)")
    p.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Streamlit option for the server (repeatable), e.g. runner.postScriptGC=true: "
                        "Streamlit's default, which app/.streamlit/config.toml turns off")
    p.add_argument("--clicks", type=int, default=3, help="rounds of Pause / Resume / Derive now clicks")
    p.add_argument("--panel-runs", type=int, default=10, help="AppTest runs of the live panel to time")
    p.add_argument("--idle-s", type=float, default=20.0,
                   help="a window with the page open on the paused search: what the live ticks cost when nothing "
                        "changes")
    p.add_argument("--view", choices=("search", "stage"), default="search",
                   help="the page open in the browser windows: the Search page's live panel, or the Stage "
                        "(/stage?run=..., 1920x1080); the clicks and the idle window use the Search page")
    args = p.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="dartboard-bench-"))
    runs = tmp / "runs"
    runs.mkdir()
    load = [_loadavg()]
    proc, url = start_server(runs, args.threads, args.server_option, tmp / "server.log")
    windows: list[dict[str, Any]] = []
    refresh_s: list[float] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            run_dir = start_search(browser, url, runs, args.epochs)
            time.sleep(SETTLE_S)
            meter = CpuMeter(proc.pid, busiest_thread(proc.pid))
            order = [m for i in range(args.repeats) for m in (("headless", "browser") if i % 2 == 0
                                                                else ("browser", "headless"))]
            for mode in order:
                context = page = None
                if mode == "browser":
                    context, page = open_view(browser, url, args.view, run_dir)
                    page.wait_for_timeout(SETTLE_S * 1000)
                    since_ms = page.evaluate("performance.now()")
                else:
                    time.sleep(SETTLE_S)
                t0 = time.time()
                meter.start()
                if page is not None:
                    page.wait_for_timeout(args.window_s * 1000)
                else:
                    time.sleep(args.window_s)
                window = {"mode": mode, **window_rate(run_dir, t0, time.time()), "cpu_cores": meter.stop()}
                if page is not None:
                    done = refreshes(page.evaluate("window.__ws"), since_ms)
                    refresh_s += done
                    window["refreshes"] = len(done)
                    context.close()
                windows.append(window)
            context, page = open_search_page(browser, url)
            clicks = click_latencies(page, args.clicks)
            idle = idle_window(page, meter, args.idle_s)
            control(page, "stop").click()
            expect(metric(page, "State")).to_have_text("stopped", timeout=120_000)
            context.close()
            browser.close()
    finally:
        stop_server(proc)
    load.append(_loadavg())
    panel = panel_script_s(run_dir, args.panel_runs)

    def mean(mode: str, key: str) -> float:
        return statistics.fmean(w[key] for w in windows if w["mode"] == mode)

    def mean_cpu(mode: str, key: str) -> float:
        return statistics.fmean(w["cpu_cores"][key] for w in windows if w["mode"] == mode)

    rate = {m: mean(m, "steps_per_s") for m in ("browser", "headless")}
    ratio = rate["browser"] / rate["headless"]
    browser_s = sum(args.window_s for w in windows if w["mode"] == "browser")
    n_refresh = sum(w.get("refreshes", 0) for w in windows)
    extra_server = (mean_cpu("browser", "server_other") - mean_cpu("headless", "server_other")) * browser_s
    idle_headless = {"server_other": 0.0, "chromium": 0.0}  # a paused search with no page: nothing but heartbeats
    answered = clicks["pause_answered_s"] + clicks["derive_answered_s"]
    per_step = {k: round((mean_cpu("browser", k) - mean_cpu("headless", k) - (idle[k] - idle_headless[k]))
                         / rate["browser"], 3) for k in ("server_other", "chromium")}
    print(json.dumps({
        "preset": PRESET, "view": args.view, "config": rundir.read_config(run_dir)["config"],
        "server_options": args.server_option,
        "machine": {**machine_info(), "threads": args.threads, "loadavg_1min": [round(x, 2) for x in load]},
        "refresh_s": REFRESH_S, "window_s": args.window_s, "windows": windows,
        "steps_per_s": {m: round(v, 4) for m, v in rate.items()},
        "browser_over_headless": round(ratio, 4), "target": TARGET, "meets_target": ratio >= TARGET,
        "cpu_cores_mean": {m: {k: round(mean_cpu(m, k), 3) for k in ("search_thread", "server_other", "chromium")}
                           for m in ("browser", "headless")},
        "live_refresh": {
            "count": n_refresh,
            "server_cpu_s_per_refresh": round(extra_server / n_refresh, 4) if n_refresh else None,
            "wall_s_median": round(statistics.median(refresh_s), 4) if refresh_s else None,
            "wall_s_max": round(max(refresh_s), 4) if refresh_s else None,
            "panel_script_alone": panel,
            "idle": idle,
            "cpu_s_per_step": per_step,
            "notes": "a refresh is one live tick (the page asks, the server redraws what changed, if anything); "
                     "server_cpu_s_per_refresh: the server's CPU outside the search thread, browser minus headless "
                     "windows, per tick; wall_s: tick request to the last reply, seen by the page while the search "
                     "runs; idle: the page open on the paused search (every tick finds nothing new), CPU in cores; "
                     "cpu_s_per_step: the CPU of redrawing one step's new data (browser minus headless windows, "
                     "less the idle ticks, over the steps); panel_script_alone: the whole panel under AppTest",
        },
        "clicks_s": clicks,
        "clicks_answered_within_1s": bool(answered) and max(answered) <= 1.0,
        "pause_visible_max_s": max(clicks["pause_visible_s"]) if clicks["pause_visible_s"] else None,
        "pause_visible_within_goal": bool(clicks["pause_visible_s"])
        and max(clicks["pause_visible_s"]) <= PAUSE_VISIBLE_S,
    }, indent=2))


if __name__ == "__main__":
    main()
