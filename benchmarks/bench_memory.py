"""Peak memory of packing, against the 2 GB target, each in a fresh subprocess.

    python benchmarks/bench_memory.py [--default-layers N] [--calibrate]

It writes 1000 x 4096 generated MoE loads to a temporary .npy, runs the command line on
it with 1024 packs (``python -m packviz pack``: read, pack, print the per-layer table with
its lower bounds) for ``fast`` (the app's default) and for the command line's default
preset, and runs ``lower_bound`` alone on 20 x 4096 loads / 1024 packs. Each figure is
the peak resident memory (VmHWM) of the whole process, Python and torch included, with
the estimate of ``packviz.limits`` (working memory only) beside it.

The command line's default preset fills 256 restarts of every layer into 1024 packs:
some 80 minutes of one CPU core for 1000 layers (peak 698 MiB, as 16 layers give
426 MiB). Its memory is the same for every chunk of layers, so by default it runs on
the first ``--default-layers`` (16) layers of the same file; ``--default-layers 1000``
runs them all. On a busy machine pass ``--threads 1``: torch's threads spin against
the other processes and the runs take many times longer.

``--calibrate`` prints, for a grid of presets and shapes, the measured working memory
of ``pack()`` + ``layer_metrics()`` (peak minus the process before the run) beside the
estimate: the figures the constants of ``packviz/limits.py`` come from.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packviz import limits  # noqa: E402
from packviz.config import DEFAULT_PRESET, resolve_config  # noqa: E402

TARGET_BYTES = 2 * 1024**3
MIB = 1024**2

# Peak resident memory of the process, read as it exits.
_PEAK = "print('PEAK', [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"

# pack() + layer_metrics() on generated loads, after a small warm-up run loads the code
# paths; prints the peak over the run minus the memory before it, in bytes, as JSON.
_WORKING_MEMORY = """
import json, sys, time
from packviz import pack
from packviz.engine import driver as engine
from packviz.data.generators import generate
from packviz.metrics import layer_metrics

def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))

spec = json.loads(sys.argv[1])
weight = generate("moe", spec["layers"], spec["items"], seed=1)
small = generate("moe", 1, min(spec["items"], 2 * spec["packs"]), seed=2)
cells = engine.NUMPY_FILL_MAX_CELLS
for engine.NUMPY_FILL_MAX_CELLS in (cells, 0):  # both fills
    layer_metrics(pack(small, spec["packs"], spec["preset"], **spec["options"]).pack_loads, small)
engine.NUMPY_FILL_MAX_CELLS = cells
try:
    open("/proc/self/clear_refs", "w").write("5")  # peak := now
except OSError:
    pass
before = status("VmRSS")
started = time.perf_counter()
result = pack(weight, spec["packs"], spec["preset"], **spec["options"])
layer_metrics(result.pack_loads, result.weight)
print(json.dumps({"working_bytes": status("VmHWM") - before, "seconds": time.perf_counter() - started}))
"""


def working_memory(layers: int, items: int, packs: int, preset: str, threads: int | None = None,
                   **options: object) -> dict[str, float]:
    """Measured working memory (bytes) and time of pack() + layer_metrics() on
    [layers, items] generated MoE loads, in a fresh subprocess (with ``threads``
    torch threads, default torch's own choice)."""
    spec = {"layers": layers, "items": items, "packs": packs, "preset": preset, "options": options}
    done = subprocess.run([sys.executable, "-c", _WORKING_MEMORY, json.dumps(spec)], capture_output=True,
                          text=True, cwd=ROOT, env=_environment(threads), check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _environment(threads: int | None = None) -> dict[str, str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if threads is not None:
        # torch's intra-op threads spin against other processes on a busy machine
        environment["OMP_NUM_THREADS"] = str(threads)
    return environment


def _peak_of(code: str, threads: int | None) -> tuple[int, float, str]:
    """Run ``python -c code``; return its peak resident bytes, seconds, output."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + "\n" + _PEAK], capture_output=True, text=True,
                          cwd=ROOT, env=_environment(threads))
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the run failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    peak_line = next(line for line in reversed(done.stdout.splitlines()) if line.startswith("PEAK"))
    return int(peak_line.split()[1]) * 1024, seconds, done.stdout


def _report(name: str, peak: int, seconds: float, estimate: int | None) -> bool:
    passed = peak <= TARGET_BYTES
    shown = "-" if estimate is None else f"{estimate / MIB:.0f}"
    print(f"{name:<44} {peak / MIB:>9.0f} {shown:>9} {TARGET_BYTES / MIB:>7.0f} {seconds:>8.1f}  "
          f"{'PASS' if passed else 'FAIL'}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default-layers", type=int, default=16,
                        help="layers the command line's default preset packs (default 16 of 1000)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in each run (default torch's choice; 1 on a busy machine)")
    parser.add_argument("--calibrate", action="store_true", help="measured working memory beside the estimate")
    args = parser.parse_args()
    if args.calibrate:
        return calibrate(args.threads)

    layers, items, packs = 1000, 4096, 1024
    print(f"peak resident memory of a fresh process (MiB), target {TARGET_BYTES / MIB:.0f} MiB; "
          "estimate: packviz.limits, working memory only")
    print(f"{'run':<44} {'peak':>9} {'estimate':>9} {'target':>7} {'seconds':>8}")
    peak, seconds, _ = _peak_of("import torch, packviz.cli, packviz.metrics", args.threads)
    print(f"{'(python + torch + packviz imported)':<44} {peak / MIB:>9.0f} {'-':>9} {'':>7} {seconds:>8.1f}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        loads = Path(folder) / "loads.npy"
        subprocess.run([sys.executable, "-m", "packviz", "generate", "moe", "--layers", str(layers), "--items",
                        str(items), "--seed", "1", "--out", str(loads)], check=True, cwd=ROOT, env=_environment(),
                       capture_output=True)
        runs = [("fast", layers, str(loads))]
        default_layers = min(args.default_layers, layers)
        if default_layers < layers:
            first = Path(folder) / "first_layers.npy"
            subprocess.run([sys.executable, "-c", "import numpy as np, sys; np.save(sys.argv[2], "
                            f"np.load(sys.argv[1])[:{default_layers}])", str(loads), str(first)], check=True)
            runs.append((DEFAULT_PRESET, default_layers, str(first)))
        else:
            runs.append((DEFAULT_PRESET, layers, str(loads)))
        for preset, count, path in runs:
            code = ("from packviz.cli import main\n"
                    f"assert main(['pack', {path!r}, '--packs', '{packs}', '--preset', {preset!r}]) == 0")
            peak, seconds, _ = _peak_of(code, args.threads)
            estimate = limits.estimate_memory(count, items, packs, resolve_config(preset)).total_bytes
            label = f"CLI pack {count} x {items} / {packs}, {preset}"
            results.append(_report(label, peak, seconds, estimate))
    code = ("from packviz.data.generators import generate\nfrom packviz.metrics import lower_bound\n"
            f"lower_bound(generate('moe', 20, {items}, seed=1), {packs})")
    peak, seconds, _ = _peak_of(code, args.threads)
    results.append(_report(f"lower_bound 20 x {items} / {packs}", peak, seconds, None))
    print("all PASS" if all(results) else "some FAIL")
    return 0 if all(results) else 1


# Shapes that load each part of the estimate: fills of many restarts, pair scores of
# many packs, swap grids of many items per pack, the whole matrix.
CALIBRATION = (
    ("eplb", 1000, 4096, 1024, {}),
    ("fast", 300, 4096, 1024, {}),
    ("fast", 1000, 256, 64, {}),
    ("best", 64, 1024, 8, {}),
    ("best", 4, 4096, 2, {"max_iterations": 3}),
    ("restarts-2swap", 16, 1024, 256, {}),
    ("restarts-1swap", 4, 512, 128, {}),
    ("fast", 20, 4096, 2, {"max_iterations": 3}),
)


def calibrate(threads: int | None = None) -> int:
    print(f"{'preset':<16} {'layers':>6} {'items':>6} {'packs':>6} {'measured MiB':>13} {'estimate MiB':>13} "
          f"{'ratio':>6} {'seconds':>8}")
    for preset, layers, items, packs, options in CALIBRATION:
        measured = working_memory(layers, items, packs, preset, threads, **options)
        estimate = limits.estimate_memory(layers, items, packs, resolve_config(preset, **options)).total_bytes
        print(f"{preset:<16} {layers:>6} {items:>6} {packs:>6} {measured['working_bytes'] / MIB:>13.0f} "
              f"{estimate / MIB:>13.0f} {estimate / max(measured['working_bytes'], 1):>6.2f} "
              f"{measured['seconds']:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
