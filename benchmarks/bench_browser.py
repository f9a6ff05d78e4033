"""How quickly the app answers in a real browser, against its targets.

    python benchmarks/bench_browser.py            # 3 repetitions (2 cold starts), prints the table
    python benchmarks/bench_browser.py --quick    # 1 cold start, 2 repetitions of the rest
    python benchmarks/bench_browser.py --write    # also writes benchmarks/results_browser.txt
    python benchmarks/bench_browser.py --only presenter,animation --verbose   # some parts, raw figures
    python benchmarks/bench_browser.py --only floor --busy --write   # against the floor, quiet and busy:
                                                  # benchmarks/results_floor.txt

Other options: --repeat N, --cold N (fresh-server visits), --port P, --threads N
(OMP_NUM_THREADS for the server: on a busy 2-core machine torch's default two
threads can run several times slower than one). About 4 minutes on 2 busy cores.

Serves the app (``python -m ui.serve``, as `make run` does) on a free port
(or ``--port``) and drives Debian's headless Chromium with Playwright on the
default sample (58 layers x 288 slots, 32 packs, ``fast`` preset):

- the first visit after the server is up (a fresh server each cold repetition)
  and a later visit: something useful on screen (title and sidebar, or a
  spinner), the first chart drawn, the page complete;
- presenter Next (Explore > Step through a layer > Presenter, "Next ›");
- animation playback (Explore > Step through a layer > Animation, Plotly's
  Play at the app's default frame time, then at the fastest one offered):
  frames shown per second, counted from the slider's "Step N" label (or
  plotly_animatingframe events) on every requestAnimationFrame;
- a layer change in Step through: until the new chart is drawn, and the bytes
  the websocket received meanwhile;
- the Compare packers page: first result (a table row or a chart point), all
  results (the run over; a run still going after 20 s counts as never, inf);
- a knob change (seed, iteration cap) on the Overview until the rerun is over
  (or a Run button offered instead);
- against the floor (part ``floor``, not run by default): ``benchmarks/floor_app.py``,
  a bare Streamlit page with one stacked Plotly bar chart (288 segments on 32 bars)
  and a Next button in a fragment, and the app, alternately, each on a fresh server:
  the first chart after the server is up (Explore), presenter Next, Learn's Next,
  and Compare (from Explore) until every default preset is shown, each printed as a
  ratio to the floor's figure of the same repetition (Compare: to the floor's first
  chart); with ``--busy`` all again beside a process that keeps one core busy.

Every time is taken inside the page with performance.now(): the click is
dispatched from JavaScript and each requestAnimationFrame checks whether the
target chart's data changed (a new ``data`` / ``_fullData`` object on the
Plotly element, so a redrawn chart) and whether Streamlit's running indicator
(``stStatusWidget``, ignoring its 200 ms fade-out) is gone. Each figure is the
median and max of its repetitions; PASS / FAIL is judged on the median.
Packing results are cached by the app, so each repetition asks for a layer,
seed or iteration cap not asked for before (a compare run reuses the Explore
run of the same seed, which is the fast preset's, about 0.1 s).

This is a measurement, not a test: it asserts nothing about wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.browser import busy_core  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results_browser.txt"
RESULTS_FLOOR = ROOT / "benchmarks" / "results_floor.txt"  # --only floor --write


# ---------------------------------------------------------------- the report


@dataclasses.dataclass
class Row:
    """One measured figure: its values over the repetitions and its target."""

    what: str
    values: list[float]
    target: float | None = None  # None: shown for information only
    higher_is_better: bool = False
    unit: str = "s"
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def worst(self) -> float | None:
        if not self.values:
            return None
        return min(self.values) if self.higher_is_better else max(self.values)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        if self.median is None:
            return "n/a"
        ok = self.median >= self.target if self.higher_is_better else self.median <= self.target
        return "PASS" if ok else "FAIL"


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "KB":
        return f"{value:,.1f} KB"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.1f} {unit}"


def format_report(rows: Sequence[Row], header: str = "") -> str:
    """The table: figure, median, worst (max, or min where higher is better),
    repetitions, target and verdict, then the notes."""
    lines = [header] if header else []
    table = [("what", "median", "worst", "n", "target", "")]
    for row in rows:
        sign = ">=" if row.higher_is_better else "<="
        target = f"{sign} {_number(row.target, row.unit)}" if row.target is not None else ""
        table.append((row.what, _number(row.median, row.unit), _number(row.worst, row.unit),
                      str(len(row.values)), target, row.verdict))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for index, line in enumerate(table):
        cells = [cell.ljust(width) if i in (0, 4) else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(line, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    notes = [f"- {row.what}: {row.note}" for row in rows if row.note]
    if notes:
        lines += ["", *notes]
    failed = [row.what for row in rows if row.verdict == "FAIL"]
    judged = [row for row in rows if row.verdict in ("PASS", "FAIL")]
    lines += ["", f"{len(judged) - len(failed)} of {len(judged)} targets met (judged on the median)"
              + (f"; missed: {'; '.join(failed)}" if failed else "")]
    return "\n".join(lines)


# ------------------------------------------------------------- in the page

# Installed before every page load: the first-load marks, and the helpers the
# measurements call. Times are performance.now(), ms after the navigation began.
PROBE_JS = r"""
(() => {
  if (window.__pv) return;
  const ids = new WeakMap();
  let nextId = 1;
  const id = (o) => {
    if (!o || typeof o !== 'object') return 0;
    if (!ids.has(o)) ids.set(o, nextId++);
    return ids.get(o);
  };
  const visible = (el) => {
    if (!el || !el.isConnected) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const pv = window.__pv = {marks: {}, visible, longTasks: []};
  try {
    new PerformanceObserver((list) => list.getEntries().forEach((e) => pv.longTasks.push([e.startTime, e.duration])))
      .observe({type: 'longtask', buffered: true});
  } catch (e) { /* no long-task timing in this browser */ }
  // where the first load's time goes: Plotly's bundle arriving, the main thread's long tasks
  pv.loadDetails = () => {
    const plotly = performance.getEntriesByType('resource').find((e) => /PlotlyChart/.test(e.name));
    return {plotlyLoaded: plotly ? plotly.responseEnd : null, plotlyBytes: plotly ? plotly.transferSize : null,
            longTasks: pv.longTasks.reduce((sum, [, d]) => sum + d, 0),
            longest: pv.longTasks.reduce((most, [, d]) => Math.max(most, d), 0)};
  };
  const mark = (name) => { if (!(name in pv.marks)) pv.marks[name] = performance.now(); };

  pv.running = () => {
    const w = document.querySelector('[data-testid="stStatusWidget"]');
    if (!w) return false;
    if (/StatusWidget-exit/.test(w.className)) return false;  // fading out: the run is over
    return !!w.querySelector('[data-testid="stStatusWidgetRunningIcon"], button') ||
           /Running/i.test(w.textContent);
  };
  pv.main = () => document.querySelector('[data-testid="stMain"]') || document.body;
  pv.plots = () => [...pv.main().querySelectorAll('.js-plotly-plot')].filter(visible);
  pv.drawn = (gd) => !!(gd && gd._fullLayout && gd._fullData && gd.querySelector('.main-svg'));
  // The chart a measurement watches: the first visible plot under one of the
  // selectors, else the last visible plot of the main area.
  pv.target = (selectors) => {
    for (const s of selectors || []) {
      const found = [...document.querySelectorAll(s)].filter(visible);
      if (found.length) return found[0];
    }
    const plots = pv.plots();
    return plots[plots.length - 1] || null;
  };
  pv.sig = (gd) => (gd && pv.drawn(gd)) ? `${id(gd)}:${id(gd.data)}:${id(gd._fullData)}` : '';
  pv.points = (gd) => (gd && gd.data && gd.data[0] && gd.data[0].x) ? gd.data[0].x.length : 0;
  pv.runButton = () => [...pv.main().querySelectorAll('button')].find(
    (b) => visible(b) && /^\W*Run\W*$/.test(b.textContent.trim())) || null;
  pv.activate = (el) => {
    if (typeof el.click === 'function') el.click();
    else el.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}));
  };

  // Click el, then follow every animation frame until the rerun is over.
  // Returns ms after the click: the chart changed, the app idle, a Run button shown.
  pv.rerun = async (el, selectors, expectChange, timeoutMs) => {
    const before = pv.sig(pv.target(selectors));
    const hadRun = !!pv.runButton();
    const t0 = performance.now();
    pv.activate(el);
    const out = {chart: null, idle: null, runButton: null, sawRunning: false};
    while (true) {
      await frame();
      const now = performance.now() - t0;
      const running = pv.running();
      out.sawRunning = out.sawRunning || running;
      const sig = pv.sig(pv.target(selectors));
      if (out.chart === null && sig && sig !== before) out.chart = now;
      if (out.runButton === null && !hadRun && pv.runButton()) out.runButton = now;
      // over: no run going, and one was seen, or the chart changed (a fragment's
      // run may never show the indicator), or nothing happened for 1.5 s
      const settled = !running && (out.sawRunning || out.chart !== null || out.runButton !== null || now > 1500);
      if (settled && (out.chart !== null || out.runButton !== null || !expectChange)) {
        out.idle = now;
        return out;
      }
      if (now > timeoutMs) { out.timedOut = true; return out; }
    }
  };

  // The compare page: from the click on its link, the first result (a table
  // row or a chart point of the new page, not the stale one left from before)
  // and the end of the run.
  const fresh = (el) => {
    const box = el.closest('[data-testid="stElementContainer"]');
    return visible(el) && !(box && box.dataset.stale === 'true');
  };
  pv.compare = async (link, heading, timeoutMs) => {
    const oldPlots = new Set(pv.plots().map(pv.sig));
    const t0 = performance.now();
    pv.activate(link);
    const out = {firstRow: null, firstPoint: null, idle: null, progress: false, points: 0, rows: 0};
    let sawRunning = false;
    while (true) {
      await frame();
      const now = performance.now() - t0;
      const running = pv.running();
      sawRunning = sawRunning || running;
      const main = pv.main();
      const arrived = [...main.querySelectorAll('h1')].some((h) => fresh(h) && h.textContent.includes(heading));
      if (arrived) {
        if (main.querySelector('[data-testid="stProgress"]')) out.progress = true;
        const grid = [...main.querySelectorAll('[data-testid="stDataFrame"]')].filter(fresh)[0];
        const rows = grid ? new Set([...grid.querySelectorAll('[id^="glide-cell-"]')]
          .map((c) => c.id.split('-').pop()).filter((r) => /^\d+$/.test(r))).size : 0;
        const plots = pv.plots().filter((gd) => fresh(gd) && pv.drawn(gd) && !oldPlots.has(pv.sig(gd)));
        const points = Math.max(0, ...plots.map(pv.points));
        if (out.firstRow === null && rows > 0) out.firstRow = now;
        if (out.firstPoint === null && points > 0) out.firstPoint = now;
        out.rows = rows; out.points = points;
        if (sawRunning && !running && (rows > 0 || points > 0)) { out.idle = now; return out; }
      }
      if (now > timeoutMs) { out.timedOut = true; return out; }
    }
  };

  // Frames an animation shows: the slider's label (or plotly_animatingframe
  // events) checked on every animation frame for `ms` after the first change.
  pv.playback = async (gd, ms, startTimeoutMs) => {
    const label = () => {
      const el = gd.querySelector('.slider-group .slider-label, .slider-label');
      return el ? el.textContent : null;
    };
    let events = [];
    if (typeof gd.on === 'function') gd.on('plotly_animatingframe', () => events.push(performance.now()));
    let last = label();
    const changes = [];
    const t0 = performance.now();
    let rafs = 0;
    while (true) {
      await frame();
      const now = label();
      if (now !== last) { changes.push(performance.now()); last = now; }
      if (changes.length) rafs++;
      if (!changes.length && !events.length && performance.now() - t0 > startTimeoutMs) break;
      const first = changes.length ? changes[0] : (events.length ? events[0] : null);
      if (first !== null && performance.now() - first >= ms) break;
    }
    const span = changes.length ? performance.now() - changes[0] : performance.now() - t0;
    return {changes, events, rafs, elapsed: span, label: last};
  };

  // First-load marks, on every animation frame until the page is complete.
  const t0 = performance.now();
  const watch = () => {
    const main = pv.main();
    const title = [...document.querySelectorAll('h1')].find(visible);
    if (title) mark('title');
    const sidebar = document.querySelector('[data-testid="stSidebarUserContent"] [data-testid="stWidgetLabel"]');
    if (sidebar && visible(sidebar)) mark('sidebar');
    if (title && sidebar && visible(sidebar)) mark('titleAndSidebar');
    const spinner = [...document.querySelectorAll('[data-testid="stSpinner"], [data-testid="stSkeleton"]')]
      .find(visible);
    if (spinner) mark('spinner');
    if (pv.running()) mark('running');
    if (pv.plots().some(pv.drawn)) mark('chart');
    // complete: a chart drawn and no run going (one seen, or none for 1.5 s after the chart)
    const quiet = 'running' in pv.marks || performance.now() - pv.marks.chart > 1500;
    if ('chart' in pv.marks && quiet && !pv.running()) { mark('idle'); return; }
    if (performance.now() - t0 < 150000) requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
})();
"""


# ------------------------------------------------------------ server, browser


FLOOR_APP = ROOT / "benchmarks" / "floor_app.py"


@contextlib.contextmanager
def serve(port: int, threads: int = 0, script: Path = ROOT / "app.py") -> Iterator[tuple[str, float]]:
    """The app (or ``script``) on 127.0.0.1:port (``scripts.browser.serve_app``);
    yields the URL and the seconds until its health check answered. threads > 0
    caps torch's threads (OMP_NUM_THREADS) in the server."""
    from scripts.browser import serve_app

    env = dict(os.environ)
    if threads > 0:
        env["OMP_NUM_THREADS"] = str(threads)
    with serve_app(port, env=env, timeout_s=120, script=script) as served:
        yield served


class Session:
    """A fresh browser context (so a fresh Streamlit session) with the probe
    installed and the websocket's received bytes counted."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1500, "height": 1100})
        self.context.add_init_script(PROBE_JS)
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)
        self.url = url
        self.received = 0
        self.page.on("websocket", self._socket)

    def _socket(self, socket) -> None:
        def count(payload) -> None:
            self.received += len(payload)

        socket.on("framereceived", count)

    def close(self) -> None:
        self.context.close()

    def open(self, query: str = "") -> dict:
        """Load the app; returns the first-load marks (ms after navigation)
        and, under "details", where the time went."""
        self.page.goto(self.url + "/" + query, wait_until="commit")
        self.page.wait_for_function("() => window.__pv && 'idle' in window.__pv.marks", timeout=150_000)
        return self.page.evaluate("() => ({...window.__pv.marks, details: window.__pv.loadDetails()})")

    def settle(self, quiet_ms: int = 300) -> None:
        """Until no websocket message came for quiet_ms and the app is idle."""
        last, since = self.received, time.perf_counter()
        deadline = since + 30
        while time.perf_counter() < deadline:
            self.page.wait_for_timeout(50)
            if self.received != last:
                last, since = self.received, time.perf_counter()
            elif (time.perf_counter() - since) * 1000 >= quiet_ms and not self.page.evaluate("__pv.running()"):
                return

    def click_and_wait(self, locator, selectors: Sequence[str] = (), expect_change: bool = True,
                       timeout_ms: int = 60_000) -> dict:
        """Click from inside the page and follow the rerun; adds the bytes received."""
        self.settle()
        handle = locator.element_handle()
        before = self.received
        out = self.page.evaluate("([el, s, e, t]) => __pv.rerun(el, s, e, t)",
                                 [handle, list(selectors), expect_change, timeout_ms])
        self.settle()
        out["bytes"] = self.received - before
        return out

    def choose(self, text: str) -> None:
        """Click a radio option (or any label) by its visible text and wait for the rerun."""
        option = self.page.locator('[data-testid="stMain"] label').filter(has_text=text).first
        option.wait_for()
        self.click_and_wait(option, expect_change=False)


def number_step(page, label: str, up: bool = True):
    """The + (or -) button of the number input labelled ``label``."""
    box = page.locator('[data-testid="stNumberInput"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=label)).first
    return box.locator(f'[data-testid="stNumberInputStep{"Up" if up else "Down"}"]')


# ------------------------------------------------------------ measurements


# a compare run still going after this counts as never done (inf, FAIL)
COMPARE_TIMEOUT_MS = 20_000
ANIMATION = (".st-key-animation .js-plotly-plot",)
PRESENTER = (".st-key-presenter .js-plotly-plot",)


def measure_loads(browser, port: int, threads: int, cold: int, warm: int, log: Callable[[str], None]) -> list[Row]:
    useful, chart, idle, server = [], [], [], []
    warm_useful, warm_chart, warm_idle, load_bytes, details = [], [], [], [], []
    for rep in range(max(cold, 1)):
        with serve(port, threads) as (url, up_s):
            server.append(up_s)
            session = Session(browser, url)
            marks = session.open()
            session.settle()
            load_bytes.append(session.received / 1e3)
            session.close()
            useful.append(min(marks.get("titleAndSidebar", 1e9), marks.get("spinner", 1e9)) / 1e3)
            chart.append(marks["chart"] / 1e3)
            idle.append(marks["idle"] / 1e3)
            log(f"  cold visit {rep + 1}: server up in {up_s:.1f} s; {marks}")
            if rep == max(cold, 1) - 1:
                for again in range(warm):
                    session = Session(browser, url)
                    marks = session.open()
                    session.close()
                    warm_useful.append(min(marks.get("titleAndSidebar", 1e9), marks.get("spinner", 1e9)) / 1e3)
                    warm_chart.append(marks["chart"] / 1e3)
                    warm_idle.append(marks["idle"] / 1e3)
                    details.append(marks["details"])
                    log(f"  later visit {again + 1}: {marks}")
    return [
        Row("first visit: something useful (title + sidebar, or a spinner)", useful, 1.0,
            note=f"a fresh server each time; it answered its health check after "
                 f"{statistics.median(server):.1f} s (median), not counted"),
        Row("first visit: first chart drawn", chart, 3.0),
        Row("first visit: page complete (run over, charts drawn)", idle, None,
            note=f"{statistics.median(load_bytes):,.0f} KB over the websocket (median)"),
        Row("later visit: something useful", warm_useful, 1.0),
        Row("later visit: first chart drawn", warm_chart, 3.0, note=_load_note(details)),
    ]


def _load_note(details: list[dict]) -> str:
    loaded = [d["plotlyLoaded"] / 1e3 for d in details if d.get("plotlyLoaded")]
    size = next((d["plotlyBytes"] for d in details if d.get("plotlyBytes")), None)
    if not loaded:
        return ""
    return (f"Streamlit's Plotly bundle ({size / 1e6:.1f} MB) had arrived at "
            f"{statistics.median(loaded):.2f} s; the main thread then spent "
            f"{statistics.median(d['longTasks'] for d in details) / 1e3:.2f} s in long tasks "
            f"(the longest {statistics.median(d['longest'] for d in details) / 1e3:.2f} s) (medians)")


def measure_presenter(session: Session, reps: int, log) -> list[Row]:
    page = session.page
    session.choose("Step through a layer")
    session.choose("Presenter")
    times, idles, sizes = [], [], []
    for rep in range(reps):
        button = page.get_by_role("button", name="Next ›")
        out = session.click_and_wait(button, PRESENTER)
        log(f"  Next {rep + 1}: {out}")
        times.append((out["chart"] if out["chart"] is not None else out["idle"]) / 1e3)
        idles.append(out["idle"] / 1e3)
        sizes.append(out["bytes"] / 1e3)
    layer_times, layer_sizes = [], []
    for rep in range(reps):
        out = session.click_and_wait(number_step(page, "Layer"), PRESENTER)
        log(f"  layer +1 (presenter) {rep + 1}: {out}")
        layer_times.append(out["chart"] / 1e3 if out["chart"] is not None else out["idle"] / 1e3)
        layer_sizes.append(out["bytes"] / 1e3)
    return [
        Row("presenter Next: new step drawn", times, 0.3,
            note=f"run over after {statistics.median(idles):.3f} s (median); "
                 f"{statistics.median(sizes):,.1f} KB received per step"),
        Row("layer change, Presenter view: new chart drawn", layer_times, 0.5,
            note=f"{statistics.median(layer_sizes):,.1f} KB received per change (median)"),
    ]


def measure_animation(session: Session, reps: int, log) -> list[Row]:
    page = session.page
    session.choose("Step through a layer")
    session.choose("Animation")
    layer_times, layer_sizes, layer_idle = [], [], []
    for rep in range(reps):
        out = session.click_and_wait(number_step(page, "Layer"), ANIMATION)
        log(f"  layer +1 (animation) {rep + 1}: {out}")
        layer_times.append(out["chart"] / 1e3 if out["chart"] is not None else out["idle"] / 1e3)
        layer_idle.append(out["idle"] / 1e3)
        layer_sizes.append(out["bytes"] / 1e3)
    rows = [Row("layer change, Animation view: new chart drawn", layer_times, 0.5,
                note=f"run over after {statistics.median(layer_idle):.3f} s; "
                     f"{statistics.median(layer_sizes):,.1f} KB received per change (median)")]
    # at the frame time the app opens with, then at the fastest it offers (there
    # the browser, not the setting, limits the rate)
    slider = page.get_by_role("slider", name="Frame time")
    for fastest in (False, True):
        nominal = slider.first.get_attribute("aria-valuetext") if slider.count() else None
        if fastest:
            if not slider.count():
                break
            slider.first.focus()
            page.keyboard.press("Home")
            session.settle(500)
            page.wait_for_function("() => !__pv.running()")
            nominal = slider.first.get_attribute("aria-valuetext")
        fps, rafs = playback_rates(session, reps, log)
        rows.append(Row(f"animation playback, 288 items, {'fastest' if fastest else 'default'} frame time: "
                        "frames shown", fps, 10.0, higher_is_better=True, unit="frames/s",
                        note=f"frame time {nominal or 'as the app set it'}; the browser drew "
                             f"{statistics.median(rafs):.0f} animation frames/s meanwhile (median)"))
    return rows


def playback_rates(session: Session, reps: int, log) -> tuple[list[float], list[float]]:
    """Press Plotly's Play, count the frames shown for 3 s, pause; per repetition
    the frames/s shown and the browser's animation frames/s."""
    page = session.page
    fps, rafs = [], []
    for rep in range(reps):
        plot = page.locator(".js-plotly-plot").filter(has=page.locator(".updatemenu-button")).first
        plot.wait_for()
        play = plot.locator(".updatemenu-button").filter(has_text="Play").first
        handle = plot.element_handle()
        play.click()
        out = page.evaluate("([gd, ms]) => __pv.playback(gd, ms, 5000)", [handle, 3000])
        pause = plot.locator(".updatemenu-button").filter(has_text="Pause")
        if pause.count():
            pause.first.click()
        changes = out["changes"] if len(out["changes"]) >= 2 else out["events"]
        rate = (len(changes) - 1) / ((changes[-1] - changes[0]) / 1e3) if len(changes) >= 2 else 0.0
        fps.append(rate)
        rafs.append(out["rafs"] / (out["elapsed"] / 1e3))
        log(f"  playback {rep + 1}: {len(out['changes'])} label changes, {len(out['events'])} frame events, "
            f"{rate:.1f} frames/s, {rafs[-1]:.0f} animation frames/s, at {out['label']!r}")
        page.wait_for_timeout(300)
    return fps, rafs


def measure_knobs(session: Session, reps: int, log) -> list[Row]:
    page = session.page
    session.choose("Overview")
    open_options(session)
    rows = []
    for label, up, what in (("Random seed", True, "seed +1"), ("Iteration cap", False, "iteration cap -1")):
        times, runs = [], 0
        for rep in range(reps):
            out = session.click_and_wait(number_step(page, label, up), expect_change=False)
            log(f"  {what} {rep + 1}: {out}")
            times.append((out["runButton"] if out["runButton"] is not None else out["idle"]) / 1e3)
            runs += out["runButton"] is not None
        rows.append(Row(f"knob change ({what}), Overview: rerun over, charts updated", times, 1.0,
                        note=f"a Run button was offered {runs} of {reps} times" if runs else ""))
    return rows


def nav_link(page, title: str):
    return page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first


def open_options(session: Session) -> None:
    """Open the sidebar's Options expander (the knobs), if closed."""
    page = session.page
    expander = page.locator('[data-testid="stSidebar"] [data-testid="stExpander"]').filter(has_text="Options").first
    if not expander.locator("details").first.evaluate("d => d.open"):
        expander.locator("summary").first.click()
        page.wait_for_timeout(300)


def measure_compare(session: Session, reps: int, log) -> list[Row]:
    """From Explore, open Compare packers; between repetitions, back on Explore,
    the seed goes up by one so that every preset really runs again."""
    page = session.page
    first, everything, counts, progress, offered = [], [], [], 0, 0
    for rep in range(reps):
        if rep:
            session.click_and_wait(nav_link(page, "Explore"), expect_change=False)
            open_options(session)
            session.click_and_wait(number_step(page, "Random seed"), expect_change=False)
        session.settle()
        before = session.received
        out = page.evaluate("([el, h, t]) => __pv.compare(el, h, t)",
                            [nav_link(page, "Compare packers").element_handle(), "Compare packers",
                             COMPARE_TIMEOUT_MS])
        session.settle()
        toggle = page.locator('[data-testid="stCheckbox"], [data-testid="stToggle"], label').filter(
            has_text="restarts-1swap").first
        slow_offered = toggle.count() > 0
        log(f"  compare {rep + 1}: {out}, {(session.received - before) / 1e3:.1f} KB, slow preset on request: "
            f"{slow_offered}")
        starts = [t for t in (out["firstRow"], out["firstPoint"]) if t is not None]
        first.append(min(starts) / 1e3 if starts else float("inf"))
        everything.append(out["idle"] / 1e3 if out["idle"] is not None else float("inf"))
        counts.append(max(out["rows"], out["points"]))
        progress += bool(out["progress"])
        offered += slow_offered
    return [
        Row("Compare packers: first result (row or point)", first, 2.0),
        Row("Compare packers: all results", everything, 5.0,
            note=f"{max(counts)} presets shown; a progress bar seen in {progress} of {reps} runs; the 2048-restart "
                 f"preset offered on request (a toggle) in {offered} of {reps}"),
    ]


# ------------------------------------------------------ against the floor

FLOOR_CHART = (".st-key-floor_chart .js-plotly-plot",)
LEARN_CHART = (".st-key-lesson_chart .js-plotly-plot",)
# what each app figure may cost, as a multiple of the floor's
RATIO_TARGETS = {"first chart": 1.2, "presenter Next": 1.25, "Learn Next": 1.25, "Compare": 2.0}


def next_clicks(session: Session, clicks: int, selectors: Sequence[str], log, what: str) -> float:
    """Median seconds from a click on "Next ›" to the new chart (or, where no
    chart changes, to the end of the run)."""
    times = []
    for click in range(clicks):
        keyed = session.page.locator(".st-key-next button")
        button = keyed.first if keyed.count() else session.page.get_by_role("button", name="Next ›").first
        out = session.click_and_wait(button, selectors, expect_change=bool(selectors))
        log(f"  {what} Next {click + 1}: {out}")
        times.append((out["chart"] if out["chart"] is not None else out["idle"]) / 1e3)
    return statistics.median(times)


def floor_once(browser, port: int, threads: int, clicks: int, log) -> dict[str, float]:
    """The floor page on a fresh server: its first chart, and Next."""
    with serve(port, threads, FLOOR_APP) as (url, _):
        session = Session(browser, url)
        try:
            marks = session.open()
            log(f"  floor first visit: {marks}")
            return {"first chart": marks["chart"] / 1e3,
                    "Next": next_clicks(session, clicks, FLOOR_CHART, log, "floor")}
        finally:
            session.close()


def app_once(browser, port: int, threads: int, clicks: int, seed: int, log) -> dict[str, float]:
    """The app on a fresh server: Explore's first chart, presenter Next, Learn's
    Next, and Compare (from Explore) until every default preset is shown."""
    with serve(port, threads) as (url, _):
        session = Session(browser, url)
        try:
            marks = session.open()
            log(f"  app first visit: {marks}")
            found = {"first chart": marks["chart"] / 1e3}
        finally:
            session.close()
        session = Session(browser, url)
        try:
            session.open(f"?seed={seed}")
            session.choose("Step through a layer")
            session.choose("Presenter")
            found["presenter Next"] = next_clicks(session, clicks, PRESENTER, log, "presenter")
            session.settle()
            out = session.page.evaluate("([el, h, t]) => __pv.compare(el, h, t)",
                                        [nav_link(session.page, "Compare packers").element_handle(),
                                         "Compare packers", 120_000])
            log(f"  compare: {out}")
            found["Compare"] = out["idle"] / 1e3 if out["idle"] is not None else float("inf")
        finally:
            session.close()
        session = Session(browser, url)
        try:
            session.open("learn?chapter=greedy&step=0")  # a chapter that has steps after its first
            found["Learn Next"] = next_clicks(session, clicks, LEARN_CHART, log, "Learn")
        finally:
            session.close()
        return found


def measure_floor(browser, port: int, threads: int, reps: int, busy: bool, log) -> list[Row]:
    """Floor and app in the same run, alternating, quiet and (with busy) beside a
    process that keeps one core busy; each app figure as a ratio to the floor's
    figure of the same repetition (Compare: to the floor's first chart)."""
    rows = []
    for condition in ("quiet", "busy") if busy else ("quiet",):
        with busy_core() if condition == "busy" else contextlib.nullcontext():
            floors, apps = [], []
            for rep in range(reps):
                print(f"  {condition}, repetition {rep + 1}: floor, then app", flush=True)
                floors.append(floor_once(browser, port, threads, reps + 1, log))
                apps.append(app_once(browser, port, threads, reps + 1, 5000 + rep + 100 * (condition == "busy"),
                                     log))
        floor_of = {"first chart": "first chart", "presenter Next": "Next", "Learn Next": "Next",
                    "Compare": "first chart"}
        rows.append(Row(f"floor ({condition}): first chart after the server is up",
                        [f["first chart"] for f in floors], None,
                        note=f"floor Next (fragment redraw): {statistics.median(f['Next'] for f in floors):.3f} s; "
                             "app, median s: " + ", ".join(f"{what} {statistics.median(a[what] for a in apps):.3f}"
                                                           for what in floor_of)))
        rows.append(Row(f"floor ({condition}): Next", [f["Next"] for f in floors], None))
        for what, reference in floor_of.items():
            label = f"{what} (against the floor's first chart)" if what == "Compare" else what
            rows.append(Row(f"ratio to floor ({condition}): {label}",
                            [a[what] / f[reference] for a, f in zip(apps, floors)], RATIO_TARGETS[what], unit="x"))
    return rows


def _in_session(measure: Callable, query: str = "") -> Callable:
    def run(browser, url: str, reps: int, log) -> list[Row]:
        session = Session(browser, url)
        try:
            session.open(query)
            return measure(session, reps, log)
        finally:
            session.close()

    return run


MEASURE = {
    "presenter": _in_session(lambda session, reps, log: measure_presenter(session, reps + 1, log)),
    # a layer far from the first ones, not traced yet
    "animation": _in_session(measure_animation, "?layer=20"),
    # a seed not asked for before, so the presets really run
    "compare": _in_session(measure_compare, "?seed=1000"),
    "knobs": _in_session(measure_knobs),
}
PARTS = ("floor", "load", *MEASURE)
DEFAULT_PARTS = PARTS[1:]  # the floor part, fresh servers quiet and busy, when asked for


# -------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each figure (default 3)")
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    parser.add_argument("--cold", type=int, default=2, help="fresh-server first visits (default 2)")
    parser.add_argument("--quick", action="store_true", help="one cold start, two repetitions of the rest")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--threads", type=int, default=0,
                        help="cap torch's threads in the server (OMP_NUM_THREADS); default: as `make run` serves")
    parser.add_argument("--verbose", action="store_true", help="print every repetition's raw figures")
    parser.add_argument("--busy", action="store_true",
                        help="floor part: also measure beside a process that keeps one core busy")
    parser.add_argument("--only", default=",".join(DEFAULT_PARTS),
                        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all but floor)")
    args = parser.parse_args(argv)
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")

    from playwright.sync_api import sync_playwright

    from scripts.browser import CHROMIUM, CHROMIUM_ARGS, free_port

    reps = 2 if args.quick else max(args.repeat, 1)
    cold = 1 if args.quick else max(args.cold, 1)
    port = args.port or free_port()

    def log(text: str) -> None:
        if args.verbose:
            print(text, flush=True)

    started = time.perf_counter()
    rows: list[Row] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            if "floor" in parts:
                print("floor and app, fresh servers ...", flush=True)
                rows += measure_floor(browser, port, args.threads, reps, args.busy, log)
            if "load" in parts:
                print("first visits ...", flush=True)
                rows += measure_loads(browser, port, args.threads, cold, reps, log)
            if parts - {"load", "floor"}:
                with serve(port, args.threads) as (url, _):
                    warmup = Session(browser, url)  # the server's first run, not measured again
                    warmup.open()
                    warmup.close()
                    for part in MEASURE:
                        if part in parts:
                            print(f"{part} ...", flush=True)
                            rows += MEASURE[part](browser, url, reps, log)
        finally:
            browser.close()
    order = ["floor (quiet): first", "floor (quiet): Next", "ratio to floor (quiet)", "floor (busy): first",
             "floor (busy): Next", "ratio to floor (busy)",
             "first visit: something", "first visit: first chart", "first visit: page", "later visit: something",
             "later visit: first", "presenter Next", "animation playback, 288 items, default",
             "animation playback, 288 items, fastest", "layer change, Animation",
             "layer change, Presenter", "Compare packers: first", "Compare packers: all", "knob change (seed",
             "knob change (iteration"]
    rows.sort(key=lambda row: next((i for i, prefix in enumerate(order) if row.what.startswith(prefix)), 99))
    header = (f"packviz in headless Chromium ({CHROMIUM}), default sample 58 x 288, 32 packs, fast preset; "
              f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}; torch threads in the server: {args.threads or 'default'}; "
              f"{reps} repetitions ({cold} cold starts); "
              f"{time.strftime('%Y-%m-%d %H:%M')}, {time.perf_counter() - started:.0f} s in all\n")
    report = format_report(rows, header)
    print()
    print(report)
    if args.write:
        written = RESULTS_FLOOR if parts == {"floor"} else RESULTS
        written.write_text(report + "\n")
        print(f"\nwritten to {written.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
