"""Statistics of expert traffic over time, for a trace you point it at and for the generator.

    python benchmarks/traffic_stats.py TRACE [--window 40] [--unit "forward passes"] [--seeds 5]

TRACE is anything ``packviz.data.traces.read_trace`` reads (a routing log, a directory of one-prompt
logs, an SGLang dump, an .npy of [windows, layers, experts]). Prints, per phase found, hot/mean,
window-to-window L1 change, lag-1 and lag-4 autocorrelation of expert shares, and how often the hot
set and the hottest expert change; then the same for ``drifting_traffic`` of the same phase and
number of windows (mean over seeds) beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packviz.data.traces import read_trace  # noqa: E402
from packviz.data.traffic import drifting_traffic, traffic_statistics  # noqa: E402

FIELDS = ("hot_over_mean", "change_l1", "autocorrelation", "autocorrelation_4", "hot_set_change", "top1_change")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--unit", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    for series in read_trace(args.trace, window=args.window, unit=args.unit):
        real = traffic_statistics(series.loads, series.moe_layers)
        phase = series.phase or "prefill"
        windows, layers, experts = series.loads.shape
        dense = int((~series.moe_layers).sum())
        generated = [traffic_statistics(drifting_traffic(windows, layers, experts, dense_layers=dense,
                                                         phase=phase, seed=seed))
                     for seed in range(args.seeds)]
        print(series.source)
        print(f"{'statistic':<20} {'trace':>8} {'generated':>10}   (generated: {phase}, mean of {args.seeds} seeds)")
        for field in FIELDS:
            mean = sum(getattr(g, field) for g in generated) / len(generated)
            print(f"{field:<20} {getattr(real, field):>8.4f} {mean:>10.4f}")
        low, high = real.hot_over_mean_range
        spans = [g.hot_over_mean_range for g in generated]
        print(f"{'hot/mean by layer':<20} {low:.2f}-{high:.2f}   generated {min(s[0] for s in spans):.2f}-"
              f"{max(s[1] for s in spans):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
