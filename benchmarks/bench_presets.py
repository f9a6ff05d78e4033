"""`best` against `fast` per layer, in `pack` and in `rebalance_experts`, and what each costs.

    python benchmarks/bench_presets.py                # Qwen3-30B-A3B-like dumps, 3 seeds, and the V3 timing
    python benchmarks/bench_presets.py --seeds 1 --repeats 2
    python benchmarks/bench_presets.py --packviz /other/checkout    # the same figures for another tree

Loads: a Qwen3-30B-A3B-like recorder dump, ``drifting_moe`` [20 steps, 48
layers, 128 experts] summed over the steps, and heavy-tailed ``zipf`` /
``lognormal`` / ``hot`` layers of the same shape; each on several clusters,
global and hierarchical, with and without joint replication. For every case
it prints the layers where `best`'s busiest GPU is heavier than `fast`'s
(there should be none) and, on DeepSeek-V3's shape (58 x 256 -> 288 slots, 8
groups, 4 nodes, 32 GPUs), the time of one rebalance per preset (the fastest
of the repeats in CPU seconds, one thread), all from this run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch


def _timed(repeats: int, function, *args, **kwargs):
    """(result, fastest CPU seconds of the repeats): CPU time, as this process's
    own work, moves less than wall time on shared cores."""
    fastest, result = float("inf"), None
    for _ in range(repeats):
        started = time.process_time()
        result = function(*args, **kwargs)
        fastest = min(fastest, time.process_time() - started)
    return result, fastest


CLUSTERS = (  # slots, groups, nodes, GPUs
    (160, 8, 4, 32), (160, None, 1, 32), (144, 8, 2, 16), (192, 8, 4, 32), (144, None, 1, 16),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed rebalances per preset (the fastest counts)")
    parser.add_argument("--time-only", action="store_true", help="only the DeepSeek-V3 timing")
    parser.add_argument("--packviz", help="the checkout whose packviz to measure (default: this one)")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.packviz or str(Path(__file__).resolve().parent.parent))
    from packviz.data import generators
    from packviz.eplb import gpu_loads, rebalance_experts
    from packviz.eplb.replicate import replicate_experts
    from packviz.packer import pack

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, packviz from {Path(sys.modules['packviz'].__file__).parent}")

    def peaks(weight, slots, groups, nodes, gpus, packer, joint):
        placement = rebalance_experts(weight, slots, groups, nodes, gpus, packer=packer, joint_replication=joint)
        return gpu_loads(weight, placement.phy2log, placement.logcnt, gpus).amax(dim=1)

    loads = {}
    for seed in range(0 if args.time_only else args.seeds):
        loads[f"Qwen-like dump, seed {seed}"] = generators.drifting_moe(20, 48, 128, seed=seed).sum(dim=0)
        loads[f"zipf, seed {seed}"] = generators.zipf(48, 128, seed=seed)
        loads[f"lognormal(2), seed {seed}"] = generators.lognormal(48, 128, seed=seed, sigma=2.0)
        loads[f"hot, seed {seed}"] = generators.hot_experts(48, 128, seed=seed)
    print("\n== rebalance_experts: layers where best's busiest GPU is heavier than fast's (of 48), worst excess ==")
    heavier_cases = 0
    for name, weight in loads.items():
        cells = []
        for slots, groups, nodes, gpus in CLUSTERS:
            for joint in (True, False):
                fast = peaks(weight, slots, groups, nodes, gpus, "fast", joint)
                best = peaks(weight, slots, groups, nodes, gpus, "best", joint)
                heavier = best > fast
                heavier_cases += int(heavier.sum())
                cells.append(f"{int(heavier.sum())}" + (f" ({float((best / fast).max() - 1):.3%})"
                                                        if bool(heavier.any()) else ""))
        print(f"{name:28} " + " ".join(f"{c:>11}" for c in cells))
    print("columns: " + ", ".join(f"{s} slots {'global' if g is None else f'{g} groups'} {n} nodes {m} GPUs "
                                  f"{'joint' if j else 'DeepSeek counts'}"
                                  for s, g, n, m in CLUSTERS for j in (True, False)))

    print("\n== pack: layers where best's heaviest pack is heavier than fast's ==")
    for name, weight in loads.items():
        cells = []
        for slots, gpus in ((160, 32), (144, 16), (256, 8)):
            phy2log, _, logcnt = replicate_experts(weight, slots)
            replicas = (weight / logcnt).gather(1, phy2log)
            fast = pack(replicas, gpus, "fast").pack_loads.amax(dim=1)
            best = pack(replicas, gpus, "best").pack_loads.amax(dim=1)
            heavier_cases += int((best > fast).sum())
            cells.append(f"{int((best > fast).sum())}")
        print(f"{name:28} " + " ".join(f"{c:>4}" for c in cells) + "   (160 on 32, 144 on 16, 256 on 8)")
    if loads:
        print(f"\nlayers where best is heavier than fast, all cases: {heavier_cases}")

    print("\n== time of one rebalance, DeepSeek-V3 shape: 58 x 256 -> 288 slots, 8 groups, 4 nodes, 32 GPUs ==")
    weight = generators.moe(58, 256, seed=0)
    times = {}
    for packer in ("eplb", "fast", "best"):
        _, times[packer] = _timed(args.repeats, rebalance_experts, weight, 288, 8, 4, 32, packer=packer)
    print("CPU time: " + "  ".join(f"{packer} {seconds:.3f} s" for packer, seconds in times.items())
          + f"   (best / fast {times['best'] / times['fast']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
