"""How quickly the Deploy page answers a change of cluster shape on the default sample.

    python benchmarks/bench_deploy_page.py [--changes N]

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
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packviz.data.loaders import read_loads  # noqa: E402
from packviz.eplb import rebalance_experts  # noqa: E402

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
    args = parser.parse_args()
    os.environ.setdefault("PACKVIZ_WORKERS", "0")
    weight = read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight
    counts = GPU_COUNTS[:min(args.changes, len(GPU_COUNTS))]
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
