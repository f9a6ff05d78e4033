"""fast and best against the seed's after function, on shapes and seeds the presets were not tuned on.

    python benchmarks/bench_targets.py [--seeds 3] [--repeats 3] [--quick] [--device cpu|cuda] [--only TEXT]

First the fixed cost: ``fast``'s and ``eplb``'s time per pack() call on
DeepSeek's README example (2 x 12 on 4 packs), and their ratio.

For every shape and every seed of its generator, the seed's after function
(read from ``../shared/reference/seed-balanced-packing.txt``, run in this
process on the same input), ``fast`` and ``best`` each run ``--repeats``
times; the fastest run counts. The gap of a run is its mean over layers of
max pack load / lower bound - 1. Per run it prints each preset's gap and time
as ratios to the seed's; per shape the worst ratio over its seeds; then the
verdict on the targets:

- fast: gap no worse than the seed's (within 5%), time <= 0.03x the seed's;
- best: gap <= 0.05x the seed's where the lower bound is near-tight, never
  worse where it is loose, time <= 0.35x the seed's.

"Near-tight" shapes have continuous loads and no replicated hot expert, so
the optimum sits next to the bound; on the loose ones (hot experts and their
replicas, or whole-number loads whose granularity keeps every packer above
the bound) the ratio of gaps says little and only "never worse" is asked.
A gap below 1e-9 is on the bound: the ratio is 0 where the preset's is
(nothing beats it) and infinite where only the seed's is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_packer import DEFAULT_REFERENCE, load_reference  # noqa: E402

from packviz import pack  # noqa: E402
from packviz.data.generators import generate, moe, replicate_hot  # noqa: E402
from packviz.metrics import lower_bound  # noqa: E402

FAST_GAP, FAST_TIME = 1.05, 0.03
BEST_TIGHT_GAP, BEST_LOOSE_GAP, BEST_TIME = 0.05, 1.0, 0.35
ON_BOUND = 1e-9  # a gap this small is on the bound


@dataclass(frozen=True)
class Shape:
    name: str
    make: Callable[[int, int], torch.Tensor]  # (layers, seed) -> [L, n]
    num_packs: int
    tight: bool


def shapes() -> list[Shape]:
    return [
        Shape("moe 256->288 / 32", lambda L, s: replicate_hot(moe(L, 256, seed=s), 288), 32, False),
        Shape("moe 256 / 64, no replicas", lambda L, s: moe(L, 256, seed=s, skew=1.0), 64, False),
        Shape("moe 128->192 / 24", lambda L, s: replicate_hot(moe(L, 128, seed=s, skew=1.4), 192), 24, False),
        Shape("moe 512->576 / 64", lambda L, s: replicate_hot(moe(L, 512, seed=s), 576), 64, False),
        Shape("whole-number lognormal 240 / 16", lambda L, s: generate("lognormal", L, 240, seed=s, sigma=0.8), 16,
              False),
        Shape("counts 1-60, 120 / 8", lambda L, s: torch.randint(
            1, 61, (L, 120), generator=torch.Generator().manual_seed(s)).double(), 8, False),
        Shape("uniform 384 / 32", lambda L, s: generate("uniform", L, 384, seed=s, integer=False), 32, True),
        Shape("lognormal 320 / 64", lambda L, s: generate("lognormal", L, 320, seed=s, integer=False, sigma=0.7),
              64, True),
        Shape("zipf 256 / 32", lambda L, s: generate("zipf", L, 256, seed=s, integer=False, exponent=0.6), 32, True),
        Shape("gamma-like 480 / 48", lambda L, s: generate("uniform", L, 480, seed=s, integer=False) ** 2, 48, True),
        # Heavy-tailed with about 10 items a pack, where fast's gap strays furthest
        # above the seed's from seed to seed. With sigma 1.4 the largest item often
        # sits near the mean pack load, so the bound is loose there.
        Shape("heavy-tailed lognormal 320 / 32", lambda L, s: generate(
            "lognormal", L, 320, seed=s, integer=False, sigma=1.0), 32, True),
        Shape("heavier-tailed lognormal 320 / 32", lambda L, s: generate(
            "lognormal", L, 320, seed=s, integer=False, sigma=1.4), 32, False),
    ]


# DeepSeek's README example as the app's sample packs it (2 layers, 12 items, 4 packs).
README_WEIGHT = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                 [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]
README_PACKS = 4


def per_call_seconds(preset: str, calls: int, repeats: int, device: str) -> float:
    """Seconds per pack() call on DeepSeek's README example: the fixed cost."""
    weight = torch.tensor(README_WEIGHT, dtype=torch.float64)
    for _ in range(10):  # warm-up: first calls pay imports and allocator growth
        pack(weight, README_PACKS, preset, device=device)

    def batch() -> torch.Tensor:
        for _ in range(calls):
            result = pack(weight, README_PACKS, preset, device=device)
        return result.pack_index

    return fastest(batch, repeats, device)[0] / calls


def fastest(run: Callable[[], torch.Tensor], repeats: int, device: str) -> tuple[float, torch.Tensor]:
    best, result = float("inf"), None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best, result


def mean_gap(weight: torch.Tensor, pack_index: torch.Tensor, num_packs: int) -> float:
    loads = torch.zeros(weight.shape[0], num_packs, dtype=torch.float64)
    loads.scatter_add_(1, pack_index.cpu().long(), weight)
    return float((loads.amax(dim=1) / lower_bound(weight, num_packs) - 1).mean())


def gap_ratio(gap: float, reference: float) -> float:
    """gap / reference; 0 where the gap is on the bound (nothing beats it),
    infinite where only the reference is."""
    if gap <= ON_BOUND:
        return 0.0
    return gap / reference if reference > ON_BOUND else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per shape (default 3)")
    parser.add_argument("--first-seed", type=int, default=101)
    parser.add_argument("--repeats", type=int, default=3, help="runs per packer; the fastest counts")
    parser.add_argument("--layers", type=int, default=48)
    parser.add_argument("--quick", action="store_true", help="12 layers, 1 seed, 1 run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--only", default="", help="run only the shapes whose name holds this text")
    parser.add_argument("--calls", type=int, default=200, help="pack() calls per run on the README example")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.seeds, args.repeats = 12, 1, 1
    seed_after = load_reference(args.reference)["seed-after"]
    device = args.device
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, {args.layers} layers, "
          f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, fastest of {args.repeats} runs")
    fast_call = per_call_seconds("fast", args.calls, args.repeats, device)
    eplb_call = per_call_seconds("eplb", args.calls, args.repeats, device)
    print(f"DeepSeek's README example ({len(README_WEIGHT)} x {len(README_WEIGHT[0])} on {README_PACKS} packs), "
          f"per pack() call: fast {fast_call * 1e3:.3f} ms, eplb {eplb_call * 1e3:.3f} ms, "
          f"fast / eplb {fast_call / eplb_call:.2f}x\n")
    print(f"{'shape':<34} {'seed':>4} {'seed-after':>10} {'time s':>8} | {'fast gap x':>10} {'time x':>7} | "
          f"{'best gap x':>10} {'time x':>7}")
    worst: dict[str, dict[str, float]] = {}
    for shape in (shape for shape in shapes() if args.only in shape.name):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            weight = shape.make(args.layers, seed)
            m = shape.num_packs

            def run_seed(weight: torch.Tensor = weight, m: int = m) -> torch.Tensor:
                torch.manual_seed(0)
                return seed_after(weight.float().to(device), m)[0]

            ref_time, ref_index = fastest(run_seed, args.repeats, device)
            ref_gap = mean_gap(weight, ref_index, m)
            row = {}
            for preset in ("fast", "best"):
                seconds, result = fastest(lambda preset=preset, weight=weight, m=m: pack(
                    weight, m, preset, device=device), args.repeats, device)
                row[preset] = (gap_ratio(mean_gap(weight, result.pack_index, m), ref_gap), seconds / ref_time)
            print(f"{shape.name:<34} {seed:>4} {ref_gap * 100:>9.4f}% {ref_time:>8.3f} | "
                  f"{row['fast'][0]:>10.3f} {row['fast'][1]:>7.3f} | {row['best'][0]:>10.3f} {row['best'][1]:>7.3f}",
                  flush=True)
            mine = worst.setdefault(shape.name, {"tight": shape.tight})
            for preset, (gap_x, time_x) in row.items():
                mine[f"{preset}_gap"] = max(mine.get(f"{preset}_gap", 0.0), gap_x)
                mine[f"{preset}_time"] = max(mine.get(f"{preset}_time", 0.0), time_x)
                mine.setdefault(f"{preset}_gaps", []).append(gap_x)
                mine.setdefault(f"{preset}_times", []).append(time_x)

    if not worst:
        return 0
    print("\nworst over the seeds of each shape (ratios to the seed's after function; fast's mean gap x too)")
    print(f"{'shape':<34} {'LB':>6} | {'fast gap x':>10} {'mean':>6} {'time x':>7} | {'best gap x':>10} {'time x':>7}")
    verdicts = []
    for name, values in worst.items():
        tight = values["tight"]
        print(f"{name:<34} {'tight' if tight else 'loose':>6} | {values['fast_gap']:>10.3f} "
              f"{statistics.mean(values['fast_gaps']):>6.3f} {values['fast_time']:>7.3f} | "
              f"{values['best_gap']:>10.3f} {values['best_time']:>7.3f}")
        verdicts.append(("fast gap", name, values["fast_gap"], FAST_GAP))
        verdicts.append(("fast time", name, values["fast_time"], FAST_TIME))
        verdicts.append(("best gap", name, values["best_gap"], BEST_TIGHT_GAP if tight else BEST_LOOSE_GAP))
        verdicts.append(("best time", name, values["best_time"], BEST_TIME))
    tight_best = [g for v in worst.values() if v["tight"] for g in v["best_gaps"]]
    print("\nmeans over every run: "
          f"fast gap x {statistics.mean(g for v in worst.values() for g in v['fast_gaps']):.3f}, "
          f"time x {statistics.mean(t for v in worst.values() for t in v['fast_times']):.3f}; "
          f"best gap x {statistics.mean(tight_best) if tight_best else float('nan'):.3f} where tight, "
          f"time x {statistics.mean(t for v in worst.values() for t in v['best_times']):.3f}")
    print("\ntargets, on the worst seed of every shape")
    for what in ("fast gap", "fast time", "best gap", "best time"):
        mine = [v for v in verdicts if v[0] == what]
        failing = [f"{name} ({value:.3f} > {goal:g})" for _, name, value, goal in mine if value > goal]
        verdict = f"met on all {len(mine)} shapes" if not failing else "NOT met on " + ", ".join(failing)
        print(f"  {what:<9}: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
