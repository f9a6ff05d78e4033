"""Joint replication on tiny layers against the exhaustive optimum of counts and placements.

    python benchmarks/bench_tiny_layers.py               # 60 random layers, seed 1
    python benchmarks/bench_tiny_layers.py --cases 20 --seed 7

Each layer: 6-12 experts on 3-9 GPUs of 2 or 3 slots, at least one redundant
slot, loads heavy-tailed (Pareto), few-hot (one to three hot experts over cold
ones) or Zipf-like, whole tokens. For each it plans with DeepSeek's greedy
(`eplb`), `fast` and `best` (global policy) and divides the busiest GPU by the
exhaustive optimum over every replica count vector and every placement with no
two copies of an expert on one GPU (``tests/oracles.py``
``replication_optimum``). Prints the mean and worst ratio per preset, and the
layers where a plan puts two copies of an expert on one GPU (allowed only where
DeepSeek's does).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from oracles import replication_optimum  # noqa: E402

from packviz.eplb import gpu_loads, rebalance_experts  # noqa: E402
from packviz.eplb.placement import gpu_duplicates  # noqa: E402

PRESETS = ("eplb", "fast", "best")


def tiny_layer(generator: random.Random) -> tuple[list[int], int, int]:
    """(loads, slots, GPUs): 6-12 experts, 3-9 GPUs x 2-3 slots, at least one redundant slot."""
    while True:
        num_experts, num_gpus, per_gpu = generator.randint(6, 12), generator.randint(3, 9), generator.choice([2, 3])
        if num_experts < num_gpus * per_gpu <= num_experts * num_gpus:
            break
    family = generator.choice(["heavy-tailed", "few hot", "zipf"])
    if family == "heavy-tailed":
        loads = [int(generator.paretovariate(1.1) * 20) for _ in range(num_experts)]
    elif family == "few hot":
        hot = generator.randint(1, 3)
        loads = [generator.randint(200, 1000) if e < hot else generator.randint(0, 120) for e in range(num_experts)]
    else:
        loads = [round(1000 / (rank + 1) ** generator.uniform(0.8, 1.6)) for rank in range(num_experts)]
    generator.shuffle(loads)
    return loads, num_gpus * per_gpu, num_gpus


def ratios(num_cases: int, seed: int) -> dict[str, list[float]]:
    """Per preset, each layer's busiest GPU over the exhaustive optimum; and
    ``wasted <preset>``: layers with two copies of an expert on one GPU."""
    generator = random.Random(seed)
    found: dict[str, list[float]] = {name: [] for name in PRESETS}
    for name in PRESETS:
        found[f"wasted {name}"] = []
    for _ in range(num_cases):
        loads, num_slots, num_gpus = tiny_layer(generator)
        optimum, _ = replication_optimum(loads, num_slots, num_gpus)
        weight = torch.tensor([loads], dtype=torch.float64)
        for name in PRESETS:
            placement = rebalance_experts(weight, num_slots, None, 1, num_gpus, packer=name)
            peak = float(gpu_loads(weight, placement.phy2log, placement.logcnt, num_gpus).max())
            found[name].append(peak / optimum if optimum > 0 else 1.0)
            found[f"wasted {name}"].append(float(gpu_duplicates(placement.phy2log, len(loads), num_gpus).sum() > 0))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    found = ratios(args.cases, args.seed)
    print(f"{args.cases} random tiny layers (seed {args.seed}; 6-12 experts, 3-9 GPUs x 2-3 slots), busiest GPU "
          f"over the exhaustive optimum of counts and placements ({time.perf_counter() - started:.0f} s):")
    for name in PRESETS:
        values = found[name]
        print(f"  {name:5} mean {statistics.mean(values):.4f}  worst {max(values):.4f}  "
              f"at the optimum {sum(v <= 1 + 1e-9 for v in values)} of {len(values)}  "
              f"with two copies on a GPU {int(sum(found[f'wasted {name}']))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
