"""A room at once: N real Streamlit sessions of one server packing at the same time.

    python benchmarks/bench_load.py                 # 4 sessions; fast and restarts-2swap; quiet and busy
    python benchmarks/bench_load.py --sessions 8 --repeat 3
    python benchmarks/bench_load.py --no-busy       # skip the busy-core part
    python benchmarks/bench_load.py --write         # also writes benchmarks/results_load.txt

Serves the app (``python -m ui.serve``, as `make run` does) and opens sessions on
its websocket, as a browser does (``/_stcore/stream``, Streamlit's own BackMsg and
ForwardMsg protobufs): each session is a real script run of Explore on the default
sample (58 x 288, 32 packs), with a seed of its own so that no session is served
from another's cache. A session's time runs from its request to the end of its run
(``script_finished``), as a user waits for it, the browser's drawing apart:

- ``fast``: opening Explore (a new session, its whole first run, packing included);
- ``restarts-2swap``: pressing Run (Explore offers Run for this preset on this
  sample; the session is opened first, untimed).

Each preset runs alone (``solo``, the fastest of ``--repeat`` runs), then with
``--sessions`` N sessions asking at once. The ideal for N at once is N x solo /
cores (the server's usable cores, at least solo): the same work shared perfectly.
Every session's time is printed against it, and the slowest one is the figure.

The busy part starts another process that keeps one core busy (a Python loop),
times each preset alone again, and prints the ratio to the quiet solo time; then
the Compare page (every default preset, ``restarts-2swap`` in chunks of layers)
from its request to the end of its run, quiet and busy.

How many people one server serves: with C cores and a solo time s, N sessions
asking in the same second each wait about (slowest / ideal) x N x s / C; the
summary prints that wait for 1 to 30 people and how many fit in ``--wait``
seconds (default 3).

This is a measurement, not a test: it asserts nothing about wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.browser import busy_core  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results_load.txt"
PRESETS = ("fast", "restarts-2swap")
RUN_LABEL = "▶ Run"
_seeds = itertools.count(1000)


# ------------------------------------------------------------ one session


class Session:
    """One Streamlit session over the app's websocket, as a browser opens it."""

    def __init__(self, url: str):
        self.url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.socket = None
        self.buttons: dict[str, str] = {}
        self.pages: dict[str, str] = {}  # url path -> page script hash
        self.errors: list[str] = []

    async def __aenter__(self) -> Session:
        import websockets

        self.socket = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=None)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.socket.close()

    async def rerun(self, query: str, page: str = "", trigger: str | None = None) -> float:
        """Ask for a run of ``page`` (its url path; "" the default) with ``query``,
        pressing the button ``trigger`` (its label); seconds until the run is over."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = BackMsg()
        message.rerun_script.query_string = query
        if page:
            message.rerun_script.page_script_hash = self.pages[page]
        if trigger is not None:
            widget = message.rerun_script.widget_states.widgets.add()
            widget.id = self.buttons[trigger]
            widget.trigger_value = True
        self.buttons = {}
        started = time.perf_counter()
        await self.socket.send(message.SerializeToString())
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(await self.socket.recv())
            kind = reply.WhichOneof("type")
            if kind == "navigation":
                self.pages.update({p.url_pathname: p.page_script_hash for p in reply.navigation.app_pages})
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                element = reply.delta.new_element
                if element.WhichOneof("type") == "button":
                    self.buttons[element.button.label] = element.button.id
                elif element.WhichOneof("type") == "exception":
                    self.errors.append(element.exception.message)
            # a run that ends early for a rerun (st.rerun after Run) is followed by the real one
            elif kind == "script_finished" and reply.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                if self.errors:
                    raise RuntimeError(f"the app raised: {self.errors}")
                return time.perf_counter() - started


async def timed_run(url: str, preset: str, opened: asyncio.Event | None = None,
                    go: asyncio.Event | None = None) -> float:
    """One session's wait for ``preset`` with a fresh seed (see the module's doc).
    ``opened`` is set once the session is ready; the timed request waits for ``go``."""
    seed = next(_seeds)
    query = f"seed={seed}" + ("" if preset == "fast" else f"&preset={preset}")
    async with Session(url) as session:
        if preset == "fast":
            if opened:
                opened.set()
            if go:
                await go.wait()
            return await session.rerun(query)
        await session.rerun(query)
        if RUN_LABEL not in session.buttons:
            raise RuntimeError(f"Explore offered no Run button for {preset}")
        if opened:
            opened.set()
        if go:
            await go.wait()
        return await session.rerun(query, trigger=RUN_LABEL)


async def at_once(url: str, preset: str, sessions: int) -> list[float]:
    """``sessions`` sessions, all ready, then all asking at the same moment."""
    go = asyncio.Event()
    ready = [asyncio.Event() for _ in range(sessions)]
    tasks = [asyncio.create_task(timed_run(url, preset, event, go)) for event in ready]
    await asyncio.gather(*(event.wait() for event in ready))
    go.set()
    return list(await asyncio.gather(*tasks))


async def compare_run(url: str) -> float:
    """The Compare page with a fresh seed, from the request to the end of its run."""
    async with Session(url) as session:
        # Explore takes the seed from the address and learns the pages; eplb packs in ms
        seed = next(_seeds)
        await session.rerun(f"seed={seed}&preset=eplb")
        return await session.rerun("", page="compare")


# ------------------------------------------------------------ around it


def solo(url: str, preset: str, repeat: int) -> float:
    return min(asyncio.run(timed_run(url, preset)) for _ in range(repeat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4, help="sessions asking at once (default 4)")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of every figure (default 2)")
    parser.add_argument("--wait", type=float, default=3.0, help="the wait the summary sizes the room for (s)")
    parser.add_argument("--no-busy", action="store_true", help="skip the busy-core part")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args(argv)

    from scripts.browser import free_port, serve_app

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    started = time.perf_counter()
    report: list[str] = []

    def say(line: str) -> None:
        report.append(line)
        print(line, flush=True)

    say(f"packviz under load: {args.sessions} sessions at once on one server; default sample 58 x 288, "
             f"32 packs; {platform.machine()}, {cores} usable cores, load average {os.getloadavg()[0]:.1f} "
             f"at the start; {time.strftime('%Y-%m-%d %H:%M')}")
    summary = []
    with serve_app(args.port or free_port(), timeout_s=120) as (url, _):
        # the server's first run imports torch and starts the workers: not measured
        asyncio.run(timed_run(url, "fast"))
        time.sleep(3)
        for preset in PRESETS:  # each preset's first run in the workers, not measured
            asyncio.run(timed_run(url, preset))
        quiet = {}
        for preset in PRESETS:
            quiet[preset] = solo(url, preset, args.repeat)
            ideal = max(quiet[preset], args.sessions * quiet[preset] / cores)
            say(f"\n{preset}: alone {quiet[preset]:.2f} s; ideal for {args.sessions} at once "
                         f"{ideal:.2f} s ({args.sessions} x alone / {cores} cores)")
            worst = []
            for rep in range(args.repeat):
                times = asyncio.run(at_once(url, preset, args.sessions))
                worst.append(max(times) / ideal)
                say(f"  {args.sessions} at once, run {rep + 1}: " + ", ".join(f"{t:.2f}" for t in times)
                             + " s; / ideal: " + ", ".join(f"{t / ideal:.2f}" for t in times)
                             + f"; slowest {max(times) / ideal:.2f}x, mean {statistics.mean(times) / ideal:.2f}x")
            summary.append((f"{args.sessions} sessions at once, {preset}: slowest / ideal",
                            statistics.median(worst), max(worst), 1.2))
        if not args.no_busy:
            compare_quiet = [asyncio.run(compare_run(url)) for _ in range(args.repeat)]
            with busy_core():
                busy = {preset: solo(url, preset, args.repeat) for preset in PRESETS}
                compare_busy = [asyncio.run(compare_run(url)) for _ in range(args.repeat)]
            say("\none core busy with another process (alone, fastest of the repetitions):")
            for preset in PRESETS:
                ratio = busy[preset] / quiet[preset]
                say(f"  {preset}: {busy[preset]:.2f} s busy, {quiet[preset]:.2f} s quiet: {ratio:.2f}x")
                summary.append((f"{preset} alone, one core busy / quiet", ratio, ratio, 1.3))
            ratios = [b / q for b, q in zip(compare_busy, compare_quiet)]
            say("  Compare page, every default preset: quiet " + ", ".join(f"{t:.1f}" for t in compare_quiet)
                         + " s; busy " + ", ".join(f"{t:.1f}" for t in compare_busy) + " s")
            summary.append(("Compare page, one core busy / quiet", statistics.median(ratios), max(ratios), None))
    say("\nsummary (median and worst of the repetitions; target)")
    for what, median, worst, target in summary:
        verdict = "" if target is None else f"; target <= {target}x: {'met' if median <= target else 'NOT met'}"
        say(f"  {what}: {median:.2f}x (worst {worst:.2f}x){verdict}")
    say(f"\nOne server on {cores} cores, from this run: N people asking in the same second each wait about "
        f"(slowest / ideal) x N x alone / {cores}")
    for preset in PRESETS:
        ratio = next(median for what, median, _, _ in summary if what.startswith(f"{args.sessions} sessions")
                     and preset in what)
        each = ratio * quiet[preset] / cores
        # up to one person per core, each waits as if alone
        waits = ", ".join(f"{people}: {quiet[preset] if people <= cores else people * each:.1f} s"
                          for people in (1, 4, 8, 16, 30))
        say(f"  {preset} ({quiet[preset]:.2f} s alone, {ratio:.2f}x the ideal): {waits}; "
            f"within {args.wait:.0f} s: {max(int(args.wait / each), cores) if quiet[preset] <= args.wait else 0}")
    say(f"{time.perf_counter() - started:.0f} s in all")
    if args.write:
        RESULTS.write_text("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
