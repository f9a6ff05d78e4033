"""How quickly the Deploy page answers a change of cluster shape on the default sample, and what Over time and
Balance cost against the plans they show.

    python benchmarks/bench_deploy_page.py [--changes N] [--busy]

Over time (16 drifting steps, windows of 2: 7 fresh plans and 6 re-plans) is timed as the page runs it
(AppTest), on its first opening and again after a change of the drift, against the same fresh plans and
re-plans made alone (``place`` on each window, ``plan_moves`` from the plan in place handed that window's
fresh plan) in the same run; Balance's first opening against its plans made alone. ``--busy`` keeps a
busy core beside it all (a loaded machine).

The default sample's DeepSeek-V3 shape: 58 layers x 256 experts into 288 slots,
8 expert groups, 4 nodes, 32 GPUs, the page's `fast` preset. Each change sets a
GPU count the page has not planned yet (so nothing comes from the cache) and
times the full rerun with Streamlit's AppTest (script, plan, checks, figures; the
browser's drawing is not included). The reference, measured in the same run on
the same shapes: plain `rebalance_experts` calls with `fast` (the plan the page
makes) and with DeepSeek's greedy (`eplb`). Target: under 1 s a change.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packviz.data.loaders import read_loads  # noqa: E402
from packviz.eplb import rebalance_experts  # noqa: E402
from packviz.workers import use_one_thread_here  # noqa: E402
from scripts.browser import busy_core  # noqa: E402

# GPU counts that divide 288 slots and split over 4 nodes: every one a new shape for the page.
GPU_COUNTS = (16, 8, 48, 96, 24, 72, 144, 36, 12)
TARGET_S = 1.0


def page_changes(changes: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page("pages/deploy.py").run()
    times = []
    for gpus in GPU_COUNTS[:changes]:
        at.number_input(key="deploy_gpus").set_value(gpus)
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
    return times


def over_time_alone(weight, steps: int, window: int, drift: float, seed: int = 0) -> float:
    """The seconds of Over time's plans made alone: a fresh plan per window, a re-plan per later window."""
    import torch

    from packviz.data.generators import drifting_from
    from packviz.eplb.cluster import Cluster, place
    from packviz.eplb.over_time import windows
    from packviz.eplb.replan import plan_moves

    cluster = Cluster(288, 8, 4, 32)
    history = windows(drifting_from(weight, steps, seed=seed, drift=drift), window)
    started = time.perf_counter()
    previous = None
    for index in range(history.shape[0] - 1):
        fresh = place(history[index], cluster, "fast").phy2log
        previous = fresh if previous is None else plan_moves(
            history[index], previous, 8, 4, 32, tolerance=0.005, packer="fast", hierarchical=True,
            fresh=fresh).placement.phy2log
    del torch
    return time.perf_counter() - started


def balance_alone(weight, presets=("eplb", "fast", "best")) -> float:
    """The seconds of Balance's plans made alone: each preset under both policies."""
    from packviz.eplb.cluster import Cluster, place

    started = time.perf_counter()
    for policy in ("hierarchical", "global"):
        for preset in presets:
            place(weight, Cluster(288, 8, 4, 32, policy), preset)
    return time.perf_counter() - started


def page_views() -> dict[str, float]:
    """Seconds of the page's first opening, Balance's and Over time's first runs and Over time after a drift
    change, in one fresh AppTest (its own caches empty)."""
    from streamlit.testing.v1 import AppTest

    # time Over time to its result: the page waits for its background run within the run that asked
    os.environ["PACKVIZ_OVER_TIME_INLINE_S"] = "600"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    times = {}
    started = time.perf_counter()
    at.switch_page("pages/deploy.py").run()
    times["open"] = time.perf_counter() - started
    for name, change in (("balance", lambda: at.radio(key="deploy_section").set_value("Balance")),
                         ("over time", lambda: at.radio(key="deploy_section").set_value("Over time")),
                         ("over time again", lambda: at.radio(key="deploy_section").set_value("Placement")),
                         ("over time, back", lambda: at.radio(key="deploy_section").set_value("Over time")),
                         ("drift change", lambda: at.number_input(key="deploy_sim_drift").set_value(0.01))):
        change()
        started = time.perf_counter()
        at.run()
        times[name] = time.perf_counter() - started
        assert not at.exception, [e.value for e in at.exception]
    return times


def reference(weight, packer: str, gpu_counts, repeat: int = 3) -> float:
    """The median over the shapes of each shape's fastest call."""
    times = []
    for gpus in gpu_counts:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            rebalance_experts(weight, 288, 8, 4, gpus, packer=packer)
            best = min(best, time.perf_counter() - started)
        times.append(best)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=5, help=f"cluster changes to time (at most {len(GPU_COUNTS)})")
    parser.add_argument("--busy", action="store_true", help="a busy core beside the whole run")
    args = parser.parse_args()
    os.environ.setdefault("PACKVIZ_WORKERS", "0")
    # the page plans on one intra-op thread (packviz.workers); the plans alone must too, or a busy machine
    # slows them several times more than the page and the ratios flatter it
    use_one_thread_here()
    weight = read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight
    with busy_core() if args.busy else contextlib.nullcontext():
        views = page_views()
        first_plans, drift_plans = over_time_alone(weight, 16, 2, 0.005), over_time_alone(weight, 16, 2, 0.01)
        balance_plans = balance_alone(weight)
        report_changes(weight, args.changes)
    print(f"Deploy page's views on the default sample (AppTest{', a busy core beside' if args.busy else ''}):")
    print(f"  opening Deploy {views['open']:.2f} s; Balance the first time {views['balance']:.2f} s against its "
          f"plans alone {balance_plans:.2f} s (ratio {views['balance'] / balance_plans:.2f})")
    print(f"  Over time (16 steps, window 2: 7 fresh plans + 6 re-plans) the first time {views['over time']:.2f} s "
          f"against its plans alone {first_plans:.2f} s (ratio {views['over time'] / first_plans:.2f}); "
          f"after a drift change {views['drift change']:.2f} s against {drift_plans:.2f} s "
          f"(ratio {views['drift change'] / drift_plans:.2f})")
    print(f"  back to Over time after another view: {views['over time, back']:.3f} s (nothing planned again)")
    return 0


def report_changes(weight, changes: int) -> None:
    counts = GPU_COUNTS[:min(changes, len(GPU_COUNTS))]
    greedy, fast = reference(weight, "eplb", counts), reference(weight, "fast", counts)
    times = page_changes(len(counts))
    median = statistics.median(times)
    print("Deploy page, a new cluster shape on the default sample (58 x 256 -> 288 slots, 8 groups, 4 nodes), "
          "fast preset, AppTest:")
    print(f"  rerun: median {median:.3f} s, max {max(times):.3f} s over {len(times)} changes "
          f"({', '.join(f'{t:.2f}' for t in times)})")
    print(f"  reference, rebalance_experts alone on the same shapes (median): eplb {greedy:.3f} s, fast {fast:.3f} s")
    print(f"  ratios: rerun / eplb call {median / greedy:.1f}x, rerun / fast call {median / fast:.2f}x, "
          f"rerun / target {median / TARGET_S:.2f} ({'PASS' if max(times) < TARGET_S else 'FAIL'}: "
          f"every change under {TARGET_S:.0f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
