"""Quality and speed of every packer preset on realistic shapes.

    python benchmarks/bench_packer.py [--quick] [--device cpu|cuda] [--reference FILE] [--plot FILE]

For each shape it prints each preset's mean and max gap to the lower bound
(max pack load / LB - 1) and its time, with time ratios against ``eplb`` and
``restarts-2swap`` measured in the same run (machines are noisy; only ratios
travel). With ``--reference`` pointing at the seed file (a SEARCH/REPLACE
pair of one function), the seed's before and after versions run on the same
inputs. Then it checks the targets of the ``fast`` and ``best`` presets,
times a 1000-layer batch, measures the distance to the true optimum on small
layers (when OR-Tools is installed) and writes a quality-versus-time plot.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packviz import PRESETS, pack  # noqa: E402
from packviz.data.generators import generate, moe, replicate_hot  # noqa: E402
from packviz.metrics import layer_metrics  # noqa: E402

DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "seed-balanced-packing.txt"
BASELINE = "restarts-2swap"


@dataclass(frozen=True)
class Case:
    name: str
    weight: torch.Tensor
    num_packs: int
    lb_tight: bool  # LB near the optimum: judge "times closer to LB" here


def suite(quick: bool = False) -> list[Case]:
    layers = 8 if quick else 58
    skewed = moe(layers, 256, seed=1)
    return [
        Case("moe 256->288 slots / 32 packs", replicate_hot(skewed, 288), 32, False),
        Case("moe 256->320 slots / 64 packs", replicate_hot(skewed, 320), 64, False),
        Case("moe 128->160 slots / 16 packs", replicate_hot(moe(layers, 128, seed=2), 160), 16, False),
        Case("uniform 288 / 32 packs", generate("uniform", layers, 288, seed=3), 32, True),
        Case("lognormal 256->288 slots / 32 packs",
             replicate_hot(generate("lognormal", layers, 256, seed=4, sigma=1.0), 288), 32, True),
        Case("zipf 256->288 slots / 32 packs",
             replicate_hot(generate("zipf", layers, 256, seed=5, exponent=0.8), 288), 32, True),
        Case("moe 61 x 256 / 64 packs (no replicas)", moe(8 if quick else 61, 256, seed=6), 64, False),
    ]


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
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        pack_index = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    gaps = layer_metrics(_loads(weight, pack_index, num_packs), weight).gap_to_lower_bound
    return statistics.median(times), float(gaps.mean()), float(gaps.max())


def _runners(case: Case, presets: list[str], references: dict[str, Callable], device: str):
    runners: dict[str, Callable[[], torch.Tensor]] = {}
    for name in presets:
        runners[name] = lambda name=name, w=case.weight, m=case.num_packs: pack(
            w, m, name, seed=0, device=device).pack_index
    for label, function in references.items():
        def run_reference(function=function, w=case.weight, m=case.num_packs) -> torch.Tensor:
            torch.manual_seed(0)
            return function(w.float().to(device), m)[0]
        runners[label] = run_reference
    return runners


def run_suite(cases: list[Case], presets: list[str], references: dict[str, Callable], device: str,
              repeats: int) -> list[dict]:
    rows = []
    for case in cases:
        layers, items = case.weight.shape
        print(f"\n{case.name}: {layers} layers x {items} items, {case.num_packs} packs"
              f"{'' if case.lb_tight else '  (LB loose: hot experts or their replicas)'}")
        print(f"  {'packer':<16} {'mean gap':>10} {'max gap':>10} {'time s':>9} {'x eplb':>8} {'x ' + BASELINE:>18}")
        measured = {name: _measure(run, case.weight, case.num_packs, repeats)
                    for name, run in _runners(case, presets, references, device).items()}
        for name, (seconds, mean_gap, max_gap) in measured.items():
            to_eplb = seconds / measured["eplb"][0] if "eplb" in measured else float("nan")
            to_base = seconds / measured[BASELINE][0] if BASELINE in measured else float("nan")
            print(f"  {name:<16} {mean_gap * 100:>9.4f}% {max_gap * 100:>9.4f}% {seconds:>9.3f} {to_eplb:>8.1f} "
                  f"{to_base:>18.3f}")
            rows.append({"case": case.name, "packer": name, "mean_gap": mean_gap, "max_gap": max_gap,
                         "seconds": seconds, "lb_tight": case.lb_tight})
    return rows


def summarise(rows: list[dict]) -> dict[str, dict]:
    summary: dict[str, dict] = {}
    for name in dict.fromkeys(row["packer"] for row in rows):
        mine = [row for row in rows if row["packer"] == name]
        tight = [row for row in mine if row["lb_tight"]]
        summary[name] = {
            "mean_gap": statistics.mean(row["mean_gap"] for row in mine),
            "max_gap": max(row["max_gap"] for row in mine),
            "tight_mean_gap": statistics.mean(row["mean_gap"] for row in tight) if tight else float("nan"),
            "seconds": sum(row["seconds"] for row in mine),
        }
    base = summary.get(BASELINE)
    print(f"\nover the suite ({len({row['case'] for row in rows})} shapes; time is their sum)")
    print(f"  {'packer':<16} {'mean gap':>10} {'max gap':>10} {'LB-tight':>10} {'time s':>9} "
          f"{'time / ' + BASELINE:>22} {'gap / ' + BASELINE:>21}")
    for name, values in summary.items():
        time_ratio = values["seconds"] / base["seconds"] if base else float("nan")
        gap_ratio = values["mean_gap"] / base["mean_gap"] if base and base["mean_gap"] else float("nan")
        print(f"  {name:<16} {values['mean_gap'] * 100:>9.4f}% {values['max_gap'] * 100:>9.4f}% "
              f"{values['tight_mean_gap'] * 100:>9.4f}% {values['seconds']:>9.3f} {time_ratio:>22.3f} "
              f"{gap_ratio:>21.3f}")
    return summary


def check_targets(summary: dict[str, dict]) -> None:
    """The presets' targets on this suite's means, against the seed's after
    function where it ran (else restarts-2swap, its copy). The per-shape,
    per-seed check on unseen shapes is benchmarks/bench_targets.py."""
    reference = "seed-after" if "seed-after" in summary else BASELINE
    if reference not in summary:
        return
    base = summary[reference]
    print(f"\ntargets (suite means against {reference}, same run; worst cases: benchmarks/bench_targets.py)")
    for name, gap_goal, time_goal, what in (
        ("fast", 1.05 * base["mean_gap"], 0.03 * base["seconds"], "gap <= 1.05x, time <= 0.03x"),
        ("best", 0.05 * base["tight_mean_gap"], 0.35 * base["seconds"], "LB-tight gap <= 0.05x, time <= 0.35x"),
    ):
        if name not in summary:
            continue
        values = summary[name]
        gap = values["mean_gap"] if name == "fast" else values["tight_mean_gap"]
        gap_ok, time_ok = gap <= gap_goal, values["seconds"] <= time_goal
        print(f"  {name:<5} {what}: gap {gap * 100:.4f}% (goal {gap_goal * 100:.4f}%) "
              f"{'met' if gap_ok else 'NOT met'}; time {values['seconds']:.3f} s (goal {time_goal:.3f} s) "
              f"{'met' if time_ok else 'NOT met'}")


def batch_scaling(presets: list[str], device: str, quick: bool) -> None:
    layers = 100 if quick else 1000
    weight = replicate_hot(moe(layers, 256, seed=9), 288)
    print(f"\nbatch: {layers} layers x 288 slots / 32 packs (restarts-1swap left out: minutes)")
    print(f"  {'packer':<16} {'time s':>9} {'ms / layer':>11} {'mean gap':>10}")
    for name in presets:
        if name == "restarts-1swap":
            continue
        result = pack(weight, 32, name, device=device)
        gaps = layer_metrics(result.pack_loads, weight).gap_to_lower_bound
        print(f"  {name:<16} {result.elapsed_s:>9.3f} {result.elapsed_s / layers * 1000:>11.2f} "
              f"{float(gaps.mean()) * 100:>9.4f}%")


def optimum_check(presets: list[str], quick: bool) -> None:
    from packviz.optimal import available, solve_optimal

    if not available():
        print("\noptimum: OR-Tools is not installed (pip install ortools); skipped")
        return
    layers = 4 if quick else 12
    weight = generate("lognormal", layers, 32, seed=11, sigma=1.0)
    solved = solve_optimal(weight, 4, time_limit_s=10)
    proved = torch.tensor([s.status == "optimal" for s in solved])
    optimum = torch.tensor([s.max_load for s in solved], dtype=torch.float64)[proved]
    layers = int(proved.sum())
    print(f"\noptimum: {len(solved)} layers x 32 lognormal items / 4 packs; CP-SAT proved {layers} of them "
          "in 10 s each, and the table speaks of those")
    weight = weight[proved]
    print(f"  {'packer':<16} {'gap to optimum':>15} {'gap to LB':>10} {'at optimum':>11}")
    for name in presets:
        result = pack(weight, 4, name)
        top = result.pack_loads.amax(dim=1)
        to_optimum = top / optimum - 1
        gaps = layer_metrics(result.pack_loads, weight).gap_to_lower_bound
        print(f"  {name:<16} {float(to_optimum.mean()) * 100:>14.4f}% {float(gaps.mean()) * 100:>9.4f}% "
              f"{int((to_optimum <= 1e-12).sum()):>8}/{layers}")


def plot(summary: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, values in summary.items():
        axis.scatter(values["seconds"], values["mean_gap"] * 100, s=60)
        # the seed's own functions sit on top of their presets: label them below
        below = name.startswith("seed")
        axis.annotate(name, (values["seconds"], values["mean_gap"] * 100), textcoords="offset points",
                      xytext=(6, -14 if below else 4), color="#555" if below else "black")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("time over the suite (s, log)")
    axis.set_ylabel("mean gap to lower bound (%, log)")
    axis.set_title("packers: quality versus time (lower left is better)")
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    print(f"\nplot written to {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=None,
                        help=f"the seed file to compare with (default: {DEFAULT_REFERENCE} when present)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--quick", action="store_true", help="8 layers per shape instead of 58")
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-optimum", action="store_true")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "quality_vs_time.png")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    reference_path = args.reference or (DEFAULT_REFERENCE if DEFAULT_REFERENCE.exists() else None)
    references = {} if args.no_reference or reference_path is None else load_reference(reference_path)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, device {args.device} ({device_name}), threads {torch.get_num_threads()}"
          + (f", reference {reference_path}" if references else ", no reference"))
    rows = run_suite(suite(args.quick), args.presets, references, args.device, args.repeats)
    summary = summarise(rows)
    check_targets(summary)
    if not args.skip_batch:
        batch_scaling(args.presets, args.device, args.quick)
    if not args.skip_optimum:
        optimum_check(args.presets, args.quick)
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(summary, args.plot)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
