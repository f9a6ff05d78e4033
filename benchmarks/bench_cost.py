"""The run-time estimate against the run that follows, on shapes and data it was not probed on.

    python benchmarks/bench_cost.py             # lognormal loads, five shapes, seed 5
    python benchmarks/bench_cost.py --seed 9 --most-seconds 5

Calibrates as the app does (one thread, the probes of ``packviz.workers``), then
for each shape and preset prints the estimate, the quickest of a few runs and
their ratio; a preset estimated past ``--most-seconds`` is skipped. The probes
use the default sample, so these shapes and loads are new to the model: the
ratios show how far its layer and item scaling carries, and how much the
refinement's data-dependent stop (not known before a run) moves a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packviz import PRESETS
from packviz.cost import estimate_seconds
from packviz.workers import _quickest, calibrate_here, use_one_thread_here

SHAPES = ((61, 256, 32), (48, 128, 8), (20, 64, 16), (58, 288, 32), (12, 512, 64))
PRESET_NAMES = ("eplb", "fast", "best", "restarts-2swap")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--most-seconds", type=float, default=3.0)
    args = parser.parse_args()
    use_one_thread_here()
    calibrate_here()
    generator = torch.Generator().manual_seed(args.seed)
    ratios: dict[str, list[float]] = {name: [] for name in PRESET_NAMES}
    for layers, items, packs in SHAPES:
        normal = torch.randn((layers, items), generator=generator, dtype=torch.float64)
        weight = (100 * torch.exp(1.2 * normal)).round()  # whole tokens: ties happen
        for name in PRESET_NAMES:
            config = PRESETS[name].config
            estimate = estimate_seconds(layers, items, packs, config)
            if estimate > args.most_seconds:
                print(f"{name:15s} {layers}x{items} into {packs}: estimated {estimate:.2f} s, skipped")
                continue
            seconds = _quickest(weight, packs, config)
            ratios[name].append(estimate / seconds)
            print(f"{name:15s} {layers}x{items} into {packs}: estimated {estimate:.3f} s, "
                  f"ran {seconds:.3f} s, ratio {estimate / seconds:.2f}", flush=True)
    for name, values in ratios.items():
        if values:
            print(f"{name:15s} ratio: geometric mean {statistics.geometric_mean(values):.2f}, "
                  f"range {min(values):.2f}-{max(values):.2f}")


if __name__ == "__main__":
    main()
