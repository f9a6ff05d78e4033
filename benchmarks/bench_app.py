"""How quickly the app answers on its default sample, and how big the animation is.

    python benchmarks/bench_app.py

Prints (1) the wall time of a full Explore rerun after one option changes,
measured with Streamlit's AppTest (script, packing, figures; the browser's
drawing is not included), median of several changes; (2) the packing time
alone, against ``eplb`` in the same run; (3) the JSON size and build time of
the animated figure of a 288-item layer with 50 refinement iterations.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import plotly.io as pio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packviz import pack  # noqa: E402
from packviz.data.generators import replicate_hot  # noqa: E402
from packviz.data.loaders import read_loads  # noqa: E402
from packviz.metrics import lower_bound  # noqa: E402
from packviz.trace.timeline import build_frames  # noqa: E402
from packviz.viz.figures import animation_figure  # noqa: E402


def rerun_times(section: str, changes: int = 5) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.radio(key="section").set_value(section).run()
    times = []
    for seed in range(1, changes + 1):
        at.number_input(key="seed").set_value(seed)
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        assert not at.exception, [e.value for e in at.exception]
    return times


def main() -> int:
    weight = replicate_hot(read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight, 288)
    for section in ("Overview", "Step through a layer", "Restarts", "Export"):
        times = rerun_times(section)
        print(f"Explore rerun after the seed changes, section {section!r} (default sample 58 x 288, 32 packs, "
              f"fast preset, AppTest): median {statistics.median(times):.3f} s, max {max(times):.3f} s "
              f"over {len(times)} changes")
    for preset in ("eplb", "fast", "best", "restarts-2swap"):
        result = pack(weight, 32, preset, seed=1)
        print(f"  packing alone with {preset}: {result.elapsed_s:.3f} s")
    result = pack(weight[:1], 32, "restarts-2swap", seed=0, max_iterations=50, trace_layers=[0])
    trace = result.traces[0]
    started = time.perf_counter()
    frames = build_frames(trace)
    figure = animation_figure(trace, frames, float(lower_bound(weight[:1], 32)[0]))
    text = pio.to_json(figure, validate=False)
    built = time.perf_counter() - started
    print(f"animation of a 288-item layer: {len(frames)} frames ({len(trace.chosen_candidate.swaps)} moves, "
          f"cap 50 iterations), {len(text) / 1e6:.2f} MB of JSON, built in {built:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
