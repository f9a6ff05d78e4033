"""Quality and speed of every packer preset on realistic shapes.

    python benchmarks/bench_packer.py [--reference FILE] [--quick] [--device cpu|cuda]

For each shape it prints each preset's mean and max gap to the lower bound
(max pack load / LB - 1) and its time, with the time ratio against ``eplb``
measured in the same run (machines are noisy; only ratios travel). With
``--reference`` pointing at the seed file (a SEARCH/REPLACE pair of one
function), the seed's before and after versions run on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packviz import PRESETS, pack
from packviz.generate import generate, moe, replicate_hot
from packviz.metrics import layer_metrics

DEFAULT_REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / (
    "seed-balanced-packing.txt")


@dataclass(frozen=True)
class Case:
    name: str
    weight: torch.Tensor
    num_packs: int
    lb_tight: bool  # LB near the optimum: judge "times closer to LB" here


def suite(quick: bool = False) -> list[Case]:
    layers = 8 if quick else 58
    skewed = moe(layers, 256, seed=1)
    cases = [
        Case("moe 256->288 slots / 32 packs", replicate_hot(skewed, 288), 32, False),
        Case("moe 256->320 slots / 64 packs", replicate_hot(skewed, 320), 64, False),
        Case("moe 128->160 slots / 16 packs", replicate_hot(moe(layers, 128, seed=2), 160), 16, False),
        Case("uniform 288 / 32 packs", generate("uniform", layers, 288, seed=3), 32, True),
        Case("lognormal 256->288 slots / 32 packs",
             replicate_hot(generate("lognormal", layers, 256, seed=4, sigma=1.0), 288), 32, True),
        Case("zipf 256->288 slots / 32 packs",
             replicate_hot(generate("zipf", layers, 256, seed=5, exponent=0.8), 288), 32, True),
    ]
    return cases


def load_reference(path: Path) -> dict[str, Callable]:
    """The seed's before and after ``balanced_packing``, read from its file."""
    text = path.read_text()
    before = re.search(r"<<<<<<< SEARCH\n(.*?)\n=======", text, re.S)
    after = re.search(r"=======\n(.*?)\n>>>>>>> REPLACE", text, re.S)
    if not before or not after:
        raise SystemExit(f"{path}: no SEARCH/REPLACE blocks found")
    functions = {}
    for label, block in (("seed-before", before.group(1)), ("seed-after", after.group(1))):
        namespace: dict = {"torch": torch}
        exec(compile(block, f"{path}:{label}", "exec"), namespace)
        functions[label] = namespace["balanced_packing"]
    return functions


def _loads(weight: torch.Tensor, pack_index: torch.Tensor, num_packs: int) -> torch.Tensor:
    loads = torch.zeros(weight.shape[0], num_packs, dtype=torch.float64)
    return loads.scatter_add_(1, pack_index.cpu().long(), weight)


def _measure(run: Callable[[], torch.Tensor], weight: torch.Tensor, num_packs: int, repeats: int):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        pack_index = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    gaps = layer_metrics(_loads(weight, pack_index, num_packs), weight).gap_to_lower_bound
    return statistics.median(times), float(gaps.mean()), float(gaps.max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=None,
                        help=f"the seed file to compare with (default: {DEFAULT_REFERENCE} when present)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--quick", action="store_true", help="8 layers per shape instead of 58")
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    reference_path = args.reference or (DEFAULT_REFERENCE if DEFAULT_REFERENCE.exists() else None)
    references = {} if args.no_reference or reference_path is None else load_reference(reference_path)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}"
          + (f", reference {reference_path}" if references else ", no reference"))
    rows = []
    summary: dict[str, list[tuple[float, float, float]]] = {}
    for case in suite(args.quick):
        weight = case.weight
        layers, items = weight.shape
        print(f"\n{case.name}: {layers} layers x {items} items, {case.num_packs} packs"
              f"{'' if case.lb_tight else '  (LB loose: replicas of hot experts)'}")
        print(f"  {'packer':<16} {'mean gap':>10} {'max gap':>10} {'time s':>9} {'x eplb':>8}")
        runners: dict[str, Callable[[], torch.Tensor]] = {}
        for name in args.presets:
            runners[name] = lambda name=name, weight=weight, packs=case.num_packs: pack(
                weight, packs, name, seed=0, device=args.device).pack_index
        for label, function in references.items():
            def run_reference(function=function, weight=weight, packs=case.num_packs) -> torch.Tensor:
                torch.manual_seed(0)
                return function(weight.float().to(device), packs)[0]
            runners[label] = run_reference
        baseline = None
        for name, run in runners.items():
            seconds, mean_gap, max_gap = _measure(run, weight, case.num_packs, args.repeats)
            if name == "eplb" or baseline is None:
                baseline = baseline or seconds
            ratio = seconds / baseline
            print(f"  {name:<16} {mean_gap * 100:>9.4f}% {max_gap * 100:>9.4f}% {seconds:>9.3f} {ratio:>8.1f}")
            rows.append({"case": case.name, "packer": name, "mean_gap": mean_gap, "max_gap": max_gap,
                         "seconds": seconds, "ratio_to_eplb": ratio})
            summary.setdefault(name, []).append((mean_gap, max_gap, seconds))
    print("\nover the suite")
    print(f"  {'packer':<16} {'mean gap':>10} {'max gap':>10} {'time s':>9}")
    for name, values in summary.items():
        print(f"  {name:<16} {statistics.mean(v[0] for v in values) * 100:>9.4f}% "
              f"{max(v[1] for v in values) * 100:>9.4f}% {sum(v[2] for v in values):>9.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
