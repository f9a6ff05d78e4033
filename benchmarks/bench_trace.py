"""What recording a trace costs: each preset on one 288-item layer, untraced
against traced (recording and building the events), medians of 5 runs.

    python benchmarks/bench_trace.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packviz import PRESETS, pack
from packviz.data.generators import moe, replicate_hot


def main() -> int:
    weight = replicate_hot(moe(1, 256, seed=1), 288)
    print(f"{'preset':<16} {'untraced s':>11} {'traced s':>9} {'ratio':>6}")
    for name in PRESETS:
        plain, traced = [], []
        for _ in range(5):
            started = time.perf_counter()
            pack(weight, 32, name)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            pack(weight, 32, name, trace_layers=[0])
            traced.append(time.perf_counter() - started)
        a, b = statistics.median(plain), statistics.median(traced)
        print(f"{name:<16} {a:>11.4f} {b:>9.4f} {b / a:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
